"""One platform endpoint (thread "edgemon-uplink-<name>"): the gateway is the TCP client. It sends the
queue's packets oldest first, one at a time; a packet that asks for a reply is sent again after
OverTime without its 9014, up to ReCount times, then the link is down: the socket is closed, the
packet stays first in the queue, and the link connects again after `reconnect_s`. A reader thread
takes the platform's frames: a 9014 releases the packet with its QN, a request goes to `on_request`
(requests.py), whose answers are written at once. HJ 212-2025: a 9015 heartbeat when idle."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from ..hj212.packet import Packet, PacketError, parse
from .queue import UplinkQueue
from .settings import PlatformSettings

log = logging.getLogger(__name__)
MAX_FRAME = 8192


class Link:
    def __init__(self, platform: PlatformSettings, queue: UplinkQueue,
                 on_request: Callable[[Packet], list[Packet]], heartbeat: Callable[[], bytes] | None = None,
                 settings: Callable[[], tuple[float, int]] | None = None):
        """settings(): (over_time_s, re_count) in force (the platform may change them with 1000)."""
        self.platform, self.queue, self.on_request, self.heartbeat = platform, queue, on_request, heartbeat
        self.settings = settings or (lambda: (platform.over_time_s, platform.re_count))
        self.stats = {"sent": 0, "resent": 0, "acked": 0, "link_down": 0, "connects": 0, "rejected": 0,
                      "requests": 0}
        self.up = False
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._acks: set[str] = set()
        self._ack_cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> Link:
        self._thread = threading.Thread(target=self._run, name=f"edgemon-uplink-{self.platform.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()
        self._close()
        if self._thread is not None:
            self._thread.join(10)

    # --- the connection ------------------------------------------------------------------------

    def _connect(self) -> bool:
        p = self.platform
        try:
            sock = socket.create_connection((p.host, p.port), timeout=5)
        except OSError as exc:
            log.warning("uplink %s: cannot connect to %s:%d (%s); again in %.0f s", p.name, p.host, p.port, exc,
                        p.reconnect_s)
            return False
        sock.settimeout(None)
        self._sock = sock
        self.up = True
        self.stats["connects"] += 1
        log.info("uplink %s: connected to %s:%d (%d packets queued)", p.name, p.host, p.port,
                 self.queue.count(p.name))
        threading.Thread(target=self._read, args=(sock,), name=f"edgemon-uplink-{p.name}-rx", daemon=True).start()
        return True

    def _close(self) -> None:
        sock, self._sock, self.up = self._sock, None, False
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _write(self, raw: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            with self._send_lock:
                sock.sendall(raw)
            return True
        except OSError as exc:
            log.warning("uplink %s: send failed (%s)", self.platform.name, exc)
            return False

    def _read(self, sock: socket.socket) -> None:
        buf = bytearray()
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                if self._sock is sock:
                    log.warning("uplink %s: the platform closed the connection", self.platform.name)
                    self._close()
                return
            buf += chunk
            while b"\r\n" in buf:
                raw, _, rest = bytes(buf).partition(b"\r\n")
                buf = bytearray(rest)
                if raw.strip():
                    self._frame(raw + b"\r\n")
            if len(buf) > MAX_FRAME:
                log.warning("uplink %s: %d bytes without a frame end: dropped", self.platform.name, len(buf))
                buf.clear()

    def _frame(self, raw: bytes) -> None:
        try:
            packet = parse(raw, self.platform.crc).packet
        except PacketError as exc:
            self.stats["rejected"] += 1
            log.warning("uplink %s: refused a frame from the platform: %s", self.platform.name, exc)
            return
        if packet.cn == "9014":
            with self._ack_cond:
                self._acks.add(packet.qn or "")
                self._ack_cond.notify_all()
            return
        self.stats["requests"] += 1
        try:
            answers = self.on_request(packet)
        except Exception:  # noqa: BLE001 - a bug answering one request must not end the link
            log.exception("uplink %s: answering CN=%s failed", self.platform.name, packet.cn)
            return
        for answer in answers:
            self._write(answer.encode(self.platform.crc))

    # --- the sender ----------------------------------------------------------------------------

    def _wait_ack(self, qn: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._ack_cond:
            while qn not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self._sock is None:
                    return False
                self._ack_cond.wait(min(left, 0.2))
            self._acks.discard(qn)
            return True

    def _run(self) -> None:
        p = self.platform
        idle_since = time.monotonic()
        while not self._stop.is_set():
            if self._sock is None and not self._connect():
                self._stop.wait(p.reconnect_s)
                continue
            item = self.queue.oldest(p.name, wait_s=0.5)
            if item is None:
                if self.heartbeat and p.heartbeat_s and time.monotonic() - idle_since >= p.heartbeat_s:
                    raw = self.heartbeat()
                    if not self._send_until_acked(parse(raw, p.crc).packet.qn or "", raw, True):
                        self._down()
                    idle_since = time.monotonic()
                continue
            item_id, cn, qn, reply, raw = item
            if self._send_until_acked(qn, raw, reply):
                self.queue.done(item_id)
                idle_since = time.monotonic()
            else:
                self._down()

    def _send_until_acked(self, qn: str, raw: bytes, reply: bool) -> bool:
        over_time_s, re_count = self.settings()
        for attempt in range(re_count + 1):
            if self._stop.is_set() or not self._write(raw):
                return False
            self.stats["sent" if attempt == 0 else "resent"] += 1
            if not reply:
                return True
            if self._wait_ack(qn, over_time_s):
                self.stats["acked"] += 1
                return True
            if self._sock is None:
                return False
            log.info("uplink %s: no 9014 for QN=%s within %.0f s (%d of %d resends)", self.platform.name, qn,
                     over_time_s, attempt + 1, re_count)
        return False

    def _down(self) -> None:
        if self._stop.is_set():
            return
        self.stats["link_down"] += 1
        log.warning("uplink %s: link down; %d packets kept in the queue; connecting again in %.0f s",
                    self.platform.name, self.queue.count(self.platform.name), self.platform.reconnect_s)
        self._close()
        self._stop.wait(self.platform.reconnect_s)
