"""sockio.py, the socket code the MQTT client and Modbus over TCP share, on a real loopback socket:
exact reads across pieces, the caller's timeout error and closed message, a large send whole."""
import sockio
from fakes import loopback_server, recv_available, raises


class Late(Exception):
    pass


def test_exact_reads_the_callers_errors_and_a_large_send():
    srv, port = loopback_server()
    s = sockio.open_tcp("127.0.0.1", port, 2000)
    peer = None
    try:
        peer = srv.accept()[0]
        poll = sockio.poller(s)
        peer.send(b"ab")
        peer.send(b"cd")
        assert sockio.recv_exact(s, poll, 3, 500, Late, "gone") == bytearray(b"abc")
        e = raises(Late, sockio.recv_exact, s, poll, 3, 30, Late, "gone")  # 1 of 3 arrives in time
        assert "got 1 of 3 bytes in 30 ms" in str(e), str(e)
        big = bytes(range(256)) * 256  # 64 KB: more than one send() takes at once on most stacks
        sockio.send_all(s, big, "gone")
        got = b""
        while len(got) < len(big):
            chunk = recv_available(peer, 500)
            assert chunk, "the peer got %d of %d bytes" % (len(got), len(big))
            got += chunk
        assert got == big
        peer.send(b"x")
        peer.close()
        peer = None
        e = raises(OSError, sockio.recv_exact, s, poll, 2, 500, Late, "gone")  # 1 byte, then the close
        assert "gone" in str(e), str(e)
    finally:
        sockio.close_quietly(s)
        sockio.close_quietly(peer)
        srv.close()
    sockio.close_quietly(None)  # nothing to close: no error
