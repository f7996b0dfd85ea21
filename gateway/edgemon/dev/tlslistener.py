"""The TLS listener of a local Mosquitto (edgemon.dev.stack): its config lines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TlsListener:
    """A second listener with TLS (files made by edgemon.pki); port 0: a free one at start.
    mutual: clients must show a certificate of the CA, and its CN is their account (ACL user)."""

    cafile: Path
    certfile: Path
    keyfile: Path
    port: int = 0
    mutual: bool = False
    crlfile: Path | None = None

    def lines(self) -> list[str]:
        out = [f"listener {self.port} 127.0.0.1", f"cafile {self.cafile}", f"certfile {self.certfile}",
               f"keyfile {self.keyfile}", "tls_version tlsv1.2"]
        if self.mutual:
            out += ["require_certificate true", "use_identity_as_username true"]
        if self.crlfile:
            out.append(f"crlfile {self.crlfile}")
        return out
