"""A simulated HJ 212 platform (the bureau's side: the TCP server; the site's logger is the client).

It cuts each connection's bytes into `\\r\\n`-terminated frames (a read may hold several or part of
one), parses them with edgemon.hj212 and keeps every packet accepted and every frame refused (with
why; never answered: the site resends). A packet whose Flag asks for a reply gets 9014 (ST=91, its
QN, PW, MN and version bits, CP=&&&&), a 1013 notify 9013, the replies 9011-9014 nothing. Faults:
drop_replies, close_on_next, set_down (an outage). request() sends the site a request (2031/2051/
2061 history, 1011/1012, 1061-1064, 1000); replies_to() collects its 9011, data and 9012.
One I/O thread (a selector); the state is behind one lock."""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..hj212 import CP, VARIANTS, Packet, PacketError, parse, qn_at

log = logging.getLogger("edgemon.dev.platformsim")

INTERACTION = {"9011", "9012", "9013", "9014"}  # replies: never answered
NOTIFY = {"1013"}  # the site's notify (clock calibration request): answered with 9013
MAX_PENDING = 8192  # bytes without a \r\n before the buffer is refused as one broken frame


@dataclass(frozen=True)
class Received:
    packet: Packet
    deviations: list[str]
    raw: bytes
    peer: tuple
    at: float  # time.time() on arrival
    answer: str | None = None  # "9014"/"9013" sent, "dropped" (drop_replies), "closed" (close_on_next), None
    reply_to: str | None = None  # QN of the simulator's request this packet answers


@dataclass(frozen=True)
class Rejected:
    raw: bytes
    kind: str  # "syntax", "length" or "crc"
    reason: str
    peer: tuple
    at: float


class _Conn:
    def __init__(self, sock: socket.socket, peer: tuple):
        self.sock, self.peer, self.buf, self.open = sock, peer, bytearray(), True


class PlatformSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, crc_variant: str = "standard",
                 version_flag_bits: int | None = None):
        """version_flag_bits: the Flag version bits (1 HJ 212-2017, 2 HJ 212-2025) of the requests this
        platform sends; None: those of the site's last packet (2017 when it sent none with a Flag)."""
        if crc_variant not in VARIANTS:
            raise ValueError(f"crc_variant must be one of {', '.join(VARIANTS)}, not {crc_variant!r}")
        self.host, self.port, self.crc_variant = host, port, crc_variant
        self.version_flag_bits = version_flag_bits
        self.received: list[Received] = []
        self.rejected: list[Rejected] = []
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._by_mn: dict[str, _Conn] = {}  # MN -> the connection its last packet came on
        self._last: dict[str, Packet] = {}  # MN -> its last packet
        self._requests: dict[str, Packet] = {}  # QN -> request sent
        self._open: dict[str, Packet] = {}  # requests without their 9012 yet
        self._last_qn_t = datetime.min
        self._drop = self._close = 0
        self._ops: list = []
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> PlatformSimulator:
        self._listen()
        self._thread = threading.Thread(target=self._run, name="platformsim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None and self._thread.is_alive():
            self._wake_w.send(b"x")  # (the wake-up pair is closed only here, after the thread is done)
            self._thread.join(5)
        else:
            self._shutdown()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> PlatformSimulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def drop_replies(self, n: int) -> None:  # the next n packets asking for a reply get none
        with self._lock:
            self._drop += n

    def close_on_next(self, n: int) -> None:  # each of the next n accepted packets: close, no reply
        with self._lock:
            self._close += n

    def set_down(self, down: bool = True) -> None:
        """True: the link is down (stop listening, close every connection); False: listen again on the same port."""
        def op():
            if down:
                self._unlisten()
                for c in list(self._conns):
                    self._drop_conn(c, "platform down")
            elif self._listener is None:
                self._listen()
        log.debug("platform %s", "down" if down else "up again")
        self._in_loop(op)

    def data(self, cn: str | None = None, mn: str | None = None) -> list[Received]:
        """Accepted data packets (CN 2xxx), every one of them (resends included)."""
        with self._lock:
            return [r for r in self.received if r.packet.cn.startswith("2")
                    and (cn is None or r.packet.cn == cn) and (mn is None or r.packet.mn == mn)]

    def replies_to(self, qn: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.reply_to == qn]

    def connections(self) -> list[tuple]:
        with self._lock:
            return [c.peer for c in self._conns]

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    def request(self, mn: str, cn: str, cp_fields: dict | None = None, st: str = "32", pw: str | None = None,
                flag: int | None = None) -> str:
        """Send a request to the connected site whose packets carried MN; returns its QN. pw defaults to
        the site's own PW, flag to the version bits (see __init__) with the reply bit set."""
        with self._lock:
            conn = self._by_mn.get(mn)
            if conn is None or not conn.open:
                raise LookupError(f"no connected site has sent a packet with MN={mn}")
            last = self._last[mn]
            bits = self.version_flag_bits
            if bits is None:
                bits = last.flag >> 2 if last.flag is not None else 1
            flag = (bits << 2) | 1 if flag is None else flag
            self._last_qn_t = max(datetime.now(), self._last_qn_t + timedelta(milliseconds=1))  # QNs unique
            req = Packet(qn=qn_at(self._last_qn_t), st=st, cn=cn, pw=last.pw if pw is None else pw, mn=mn, flag=flag,
                         cp=CP.build({k: str(v) for k, v in (cp_fields or {}).items()}))
            self._requests[req.qn] = self._open[req.qn] = req
            log.debug("request to %s: %s", conn.peer, req.data_segment())
            try:
                conn.sock.sendall(req.encode(self.crc_variant))
            except OSError as exc:
                raise ConnectionError(f"request to {conn.peer} failed: {exc}") from exc
        return req.qn

    def _listen(self) -> None:  # SO_REUSEADDR (create_server's default): the same port again after set_down
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, self.port), family=family, backlog=16)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._sel.register(self._listener, selectors.EVENT_READ)
        log.debug("listening on %s:%d", self.host, self.port)

    def _unlisten(self) -> None:
        if self._listener is not None:
            self._sel.unregister(self._listener)
            self._listener.close()
        self._listener = None

    def _in_loop(self, fn) -> None:
        """Run fn in the I/O thread (the selector is its alone) and wait for it."""
        if self._thread is None or not self._thread.is_alive():
            return fn()
        done, box = threading.Event(), []
        with self._lock:
            self._ops.append((fn, done, box))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise TimeoutError("the simulator's I/O thread did not answer within 5 s")
        if box:
            raise box[0]

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._sel.select(0.5):
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(4096)
                    elif key.fileobj is self._listener:
                        self._accept()
                    elif key.data.open:
                        self._read(key.data)
                with self._lock:
                    ops, self._ops = self._ops, []
                for fn, done, box in ops:
                    try:
                        fn()
                    except Exception as exc:  # handed back to the caller
                        box.append(exc)
                    done.set()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sel.get_map() is None:  # already shut down
            return
        self._unlisten()
        for c in list(self._conns):
            self._drop_conn(c, "simulator stopped")
        self._sel.close()

    def _accept(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.settimeout(5.0)
        conn = _Conn(sock, tuple(peer[:2]))
        with self._lock:
            self._conns.append(conn)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        log.debug("connection from %s", conn.peer)

    def _drop_conn(self, conn: _Conn, why: str) -> None:
        if not conn.open:
            return
        conn.open = False
        self._sel.unregister(conn.sock)
        conn.sock.close()
        with self._lock:
            self._conns.remove(conn)
            for mn in [m for m, c in self._by_mn.items() if c is conn]:
                del self._by_mn[mn]
        log.debug("connection from %s closed: %s", conn.peer, why)

    def _read(self, conn: _Conn) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError:  # reset by the site
            chunk = b""
        if not chunk:
            self._drop_conn(conn, "closed by the site")
            return
        conn.buf += chunk
        while conn.open:
            end = conn.buf.find(b"\r\n")
            if end < 0:
                if len(conn.buf) > MAX_PENDING:
                    self._reject(conn, bytes(conn.buf), PacketError("syntax", f"no \\r\\n in {len(conn.buf)} bytes"))
                    conn.buf.clear()
                return
            frame = bytes(conn.buf[:end + 2])
            del conn.buf[:end + 2]
            if frame.strip():
                self._frame(conn, frame)

    def _reject(self, conn: _Conn, raw: bytes, err: PacketError) -> None:
        with self._lock:
            self.rejected.append(Rejected(raw, err.kind, err.reason, conn.peer, time.time()))
        log.debug("refused from %s: %s: %s", conn.peer, err.kind, err.reason)

    def _frame(self, conn: _Conn, raw: bytes) -> None:
        try:
            parsed = parse(raw, self.crc_variant)
        except PacketError as err:
            self._reject(conn, raw, err)
            return
        k, reply, answer = parsed.packet, None, None
        with self._lock:
            reply_to = self._match(k)
            if self._close > 0:
                self._close -= 1
                answer = "closed"
            elif k.wants_reply and k.cn not in INTERACTION:
                if self._drop > 0:
                    self._drop -= 1
                    answer = "dropped"
                else:
                    answer = "9013" if k.cn in NOTIFY else "9014"
                    reply = Packet(qn=k.qn, st="91", cn=answer, pw=k.pw, mn=k.mn, flag=k.flag & ~3)
            self.received.append(Received(k, parsed.deviations, raw, conn.peer, time.time(), answer, reply_to))
            self._by_mn[k.mn], self._last[k.mn] = conn, k
        log.debug("from %s: %s (%s)", conn.peer, k.data_segment(), answer or "no reply")
        if answer == "closed":
            self._drop_conn(conn, "close_on_next")
        elif reply is not None:
            try:
                with self._lock:  # one frame at a time on a connection (request() sends too)
                    conn.sock.sendall(reply.encode(self.crc_variant))
            except OSError as exc:
                self._drop_conn(conn, f"reply failed: {exc}")

    def _match(self, k: Packet) -> str | None:
        """The request k answers: its QN, or (data of a request, split parts with their own QN) the open
        request of that MN and CN. A 9012, or a 9011 refusing (QnRtn other than 1), ends the request."""
        qn = k.qn if k.qn in self._requests else None
        if qn is None:
            qn = next((q for q, r in reversed(self._open.items()) if r.mn == k.mn and r.cn == k.cn), None)
        elif k.cn == "9012" or (k.cn == "9011" and k.cp.get("QnRtn") != "1"):
            self._open.pop(qn, None)
        return qn

