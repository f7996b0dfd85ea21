"""HJ 212-2025's SM4 encryption of the CP of data packets (pure): SM4 (GB/T 32907-2016, 16-byte key)
in ECB mode over the UTF-8 text between `CP=&&` and `&&`, written as uppercase hex.

What is known without the standard's text (docs: README, "HJ 212-2025"): SM4, ECB, "NoPadding", for
CN 2000-2999, 1014 and 3020. With no padding the text must already be a multiple of 16 bytes, which
a CP rarely is, so how the standard pads is not established: `padding` is a per-platform setting,
"zero" (NUL bytes up to the block; stripped on decryption), "pkcs7", or "none" (refused unless the
length fits). The hex text encoding is a guess as well."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..hj212.cp import OpaqueCP as EncryptedCP  # the ciphertext, encoded as given

BLOCK = 16
__all__ = ["EncryptedCP", "decrypt_cp", "encrypt_cp", "encrypted"]


def encrypted(cn: str) -> bool:
    return cn.startswith("2") and len(cn) == 4 or cn in ("1014", "3020")


def pad(data: bytes, padding: str) -> bytes:
    short = -len(data) % BLOCK
    if padding == "zero":
        return data + b"\0" * short
    if padding == "pkcs7":
        n = short or BLOCK
        return data + bytes([n]) * n
    if padding == "none":
        if short:
            raise ValueError(f"SM4 without padding needs a multiple of 16 bytes; the CP is {len(data)}: "
                             'set sm4_padding = "zero" or "pkcs7" for this platform')
        return data
    raise ValueError(f"unknown SM4 padding {padding!r}")


def unpad(data: bytes, padding: str) -> bytes:
    if padding == "zero":
        return data.rstrip(b"\0")
    if padding == "pkcs7":
        n = data[-1] if data else 0
        if not 1 <= n <= BLOCK or data[-n:] != bytes([n]) * n:
            raise ValueError("bad PKCS#7 padding: wrong key or another padding")
        return data[:-n]
    return data


def encrypt_cp(text: str, key: bytes, padding: str = "zero") -> str:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return (enc.update(pad(text.encode("utf-8"), padding)) + enc.finalize()).hex().upper()


def decrypt_cp(hex_text: str, key: bytes, padding: str = "zero") -> str:
    dec = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
    return unpad(dec.update(bytes.fromhex(hex_text)) + dec.finalize(), padding).decode("utf-8")
