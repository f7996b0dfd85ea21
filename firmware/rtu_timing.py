"""Modbus RTU timing on a serial line, from the baud rate: character time, the 3.5-character
silence that ends a frame, the 1.5-character limit inside one, a frame's time on the wire.
Pure; loaded with the UART transport only (a node on TCP transports never needs it)."""


def char_us(baud, bits=11):
    """Time on the wire of one character (start + 8 data + parity or 2nd stop + stop = 11 bits)."""
    return (bits * 1000000 + baud - 1) // baud


def silent_us(baud, bits=11):
    """The 3.5-character silence that ends a frame; the spec fixes 1750 us above 19200 baud."""
    return 1750 if baud > 19200 else (7 * char_us(baud, bits) + 1) // 2


def gap_us(baud, bits=11):
    """The 1.5-character limit between bytes of one frame; 750 us above 19200 baud."""
    return 750 if baud > 19200 else (3 * char_us(baud, bits) + 1) // 2


def frame_ms(nbytes, baud, bits=11):
    """Whole milliseconds (rounded up) a frame of nbytes takes on the wire, plus the silence after it."""
    return (nbytes * char_us(baud, bits) + silent_us(baud, bits) + 999) // 1000
