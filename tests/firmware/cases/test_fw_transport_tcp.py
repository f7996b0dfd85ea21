"""TcpTransport (RTU over TCP to a serial server, Modbus TCP) against a real loopback socket: lazy
connect, exact reads across pieces, timeout, stale bytes flushed, peer close and reconnect."""
from transport_tcp import TcpTransport
from modbus_master import ModbusMaster, ModbusTimeout
from modbus_rtu import build_request
from modbus_slave import build_read_response
from modbus_tcp import mbap_frame
from fakes import loopback_server, recv_available, raises


def test_rtu_over_tcp_exchange_timeout_flush_and_reconnect():
    srv, port = loopback_server()
    t = TcpTransport("127.0.0.1", port, "rtu")
    peers = []
    try:
        raises(OSError, t.recv_exact, 1, 10)  # nothing connected yet: an error, not a hang
        req = build_request(1, 3, 0, 2)
        t.send(req)  # connects on the first send
        peer = srv.accept()[0]
        peers.append(peer)
        assert recv_available(peer) == req
        resp = build_read_response(1, 3, [0x420C, 0xCCCD])
        peer.send(resp[:3])
        peer.send(resp[3:])
        assert t.recv_exact(3, 500) + t.recv_exact(len(resp) - 3, 500) == resp
        e = raises(ModbusTimeout, t.recv_exact, 4, 30)  # silence: a timeout within its time
        assert "0 of 4" in str(e)
        peer.send(b"\x01\x03\x04late")  # a late answer to an earlier request ...
        recv_available(peer, 50)
        import time
        time.sleep(0.05)
        t.flush_input()  # ... is thrown away before the next request
        raises(ModbusTimeout, t.recv_exact, 1, 20)
        peer.close()  # the serial server drops the connection
        time.sleep(0.05)
        raises(OSError, t.recv_exact, 1, 200)
        t.close()
        t.send(req)  # the next request reconnects
        peer = srv.accept()[0]
        peers.append(peer)
        assert recv_available(peer) == req
    finally:
        t.close()
        for p in peers:
            p.close()
        srv.close()


def test_modbus_tcp_through_the_master_on_a_socket():
    srv, port = loopback_server()
    t = TcpTransport("127.0.0.1", port, "mbap")
    m = ModbusMaster(t)
    peer = None
    try:
        # The answer is queued before the request is read: the master must match it by its header.
        t._ensure()
        peer = srv.accept()[0]
        peer.send(mbap_frame(1, 255, bytes((3, 4, 0x12, 0x34, 0xAB, 0xCD))))
        import time
        time.sleep(0.05)
        t.flush_input = lambda: None  # keep the queued answer (it is the one for tid 1)
        assert m.read_registers(255, 3, 10, 2, 500) == [0x1234, 0xABCD]
        assert recv_available(peer) == mbap_frame(1, 255, bytes((3, 0, 10, 0, 2)))
    finally:
        t.close()
        if peer is not None:
            peer.close()
        srv.close()
