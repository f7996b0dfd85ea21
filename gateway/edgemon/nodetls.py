"""The node's copies of its TLS files (firmware mqtt.tls): the CA that signed the broker's
certificate and, for mutual TLS, the node's certificate and key, written as DER.

Why DER: the mbedTLS in the MicroPython unix port this project runs (1.28, mbedTLS 3.6) is built
without PEM parsing, so `tls.SSLContext.load_verify_locations` and `load_cert_chain` refuse PEM
("invalid cert", "invalid key"); MicroPython's own documentation before 1.29 says cadata is DER. The
firmware (firmware/mqtt_tls_link.py) also turns a PEM file or inline PEM text into DER itself, so
edgemon.pki's files work as they are; DER is smaller on flash and needs no decoding at boot.
Keys go out 0600 as PKCS#8 DER (mbedTLS reads it, as it does SEC1)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

# Where the node config points by default (the board's filesystem root is the working directory).
BOARD_DIR = "/certs"


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def cert_der(pem_path: Path) -> bytes:
    return x509.load_pem_x509_certificate(Path(pem_path).read_bytes()).public_bytes(serialization.Encoding.DER)


def key_der(pem_path: Path) -> bytes:
    key = serialization.load_pem_private_key(Path(pem_path).read_bytes(), None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_node_tls(out_dir: Path, ca_cert: Path, node_cert: Path | None = None,
                   node_key: Path | None = None) -> dict[str, str]:
    """ca.der (and node.der, node.key.der 0600 for mutual TLS) in out_dir, from edgemon.pki's PEM
    files. Returns {"ca": path, ["cert": path, "key": path]} of the files written; on the board they
    go to /certs/ (board_tls_config() gives the mqtt.tls that points there)."""
    out_dir = Path(out_dir)
    out = {"ca": out_dir / "ca.der"}
    _write(out["ca"], cert_der(ca_cert), 0o644)
    if (node_cert is None) != (node_key is None):
        raise ValueError("mutual TLS needs the node's certificate and its key, or neither")
    if node_cert is not None:
        out["cert"] = out_dir / "node.der"
        out["key"] = out_dir / "node.key.der"
        _write(out["cert"], cert_der(node_cert), 0o644)
        _write(out["key"], key_der(node_key), 0o600)
    return {k: str(v) for k, v in out.items()}


def board_tls_config(files: dict[str, str], server_hostname: str | None = None) -> dict[str, str]:
    """The node config's mqtt.tls for files copied to BOARD_DIR on the board (same names)."""
    cfg = {k: f"{BOARD_DIR}/{os.path.basename(v)}" for k, v in files.items()}
    if server_hostname:
        cfg["server_hostname"] = server_hostname
    return cfg
