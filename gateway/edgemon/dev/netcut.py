"""A node's network, cuttable: a TCP relay on 127.0.0.1 between one node and the broker, for the
whole-system fault suite (edgemon.dev.systemrig).

cut() is what a cellular outage or a pulled cable does, not a refusal: bytes stop flowing both
ways and nothing tells either end (no FIN, no RST); new connections are accepted and then hear
nothing, so the node finds out by its own timeouts (CONNACK, keepalive PINGRESP), as in the field.
restore() drops the connections the cut held (their far end gave up long ago) and relays again.
"""

from __future__ import annotations

import select
import socket
import threading


class NetLink:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.up = True
        self.cuts = 0
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, name=f"netlink-{self.port}", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        with self._lock:
            self.up = False
            self.cuts += 1

    def restore(self) -> None:
        with self._lock:
            self.up = True
            held, self._pairs = self._pairs, []
        for a, b in held:
            for s in (a, b):
                if s is not None:
                    s.close()

    def close(self) -> None:
        self._stop = True
        self.restore()
        self._thread.join(timeout=2)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                up = self.up
            if not up:
                with self._lock:
                    self._pairs.append((client, None))  # accepted, then silence
                continue
            try:
                server = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()  # the broker is down: the node sees a refused connection, as it would
                continue
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._stop:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    with self._lock:
                        up = self.up
                    if up:
                        peer[s].sendall(data)  # (during a cut the bytes are dropped: they never arrive)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))
            a.close()
            b.close()
