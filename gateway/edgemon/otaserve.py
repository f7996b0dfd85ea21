"""The image server of `edgemon node update`: one firmware image over plain HTTP for the nodes to
download (the MicroPython side, firmware/fwupdate.py, speaks HTTP/1.0 GET and checks the image's
SHA-256 against the signed manifest, so the transport needs no trust of its own). Served at
/<sha256>.romfs only, on the address the nodes reach this host at, for the rollout's duration."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ImageServer:
    def __init__(self, image: bytes, sha256: str, host: str, port: int):
        self.image, self.path = image, f"/{sha256}.romfs"
        self.served: list[tuple[str, int]] = []  # (client address, bytes sent), for the rollout's report
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != outer.path:
                    self.send_error(404, "not the image of this rollout")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(outer.image)))
                self.end_headers()
                self.wfile.write(outer.image)
                outer.served.append((self.client_address[0], len(outer.image)))

            def log_message(self, *args):  # the CLI reports per node; no per-request lines
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ota-image", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT the nodes reach this host at (PORT 0: any free one)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r}: HOST:PORT expected, e.g. 192.168.10.2:8470")
    return host, int(port)


def read_targets(path: Path) -> list[str]:
    """SITE/NODE per line ('#' comments, blank lines skipped); every bad line named at once."""
    out, bad = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.count("/") != 1 or not all(line.split("/")):
            bad.append(f"{path}:{n}: {line!r}: SITE/NODE expected")
        out.append(line)
    if bad:
        raise ValueError("\n".join(bad))
    return out
