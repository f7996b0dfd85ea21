"""The broker's small certificate authority: a CA, the broker's server certificate, one client
certificate per node (CN `SITE.NODE`, the node's broker account, so Mosquitto's
`use_identity_as_username` maps it onto the same ACL block) and a CRL of revoked ones.

A CA folder holds:
- `ca.crt` (give it to nodes and the gateway: the pinned trust anchor), `ca.key` (0600, keep offline);
- `issued.json`: serial -> {cn, kind, not_after, revoked}; the CRL is rebuilt from it;
- `crl.pem`: Mosquitto's `crlfile` (re-read when the broker restarts or reloads).

Keys are ECDSA P-256: mbedTLS on the ESP32 and in MicroPython's unix port verify it, and the
handshake costs less RAM and time than RSA 2048.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825


class PkiError(Exception):
    """Refused; str() says what and how to fix it."""


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    serial: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write(path: Path, data: bytes, mode: int) -> None:
    from .provision import write_private  # tmp, fsync, rename, created with mode

    write_private(path, data.decode("ascii"), mode)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgemon"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CertificateAuthority:
    def __init__(self, folder: Path):
        self.dir = Path(folder)
        self.cert_path = self.dir / "ca.crt"
        self.key_path = self.dir / "ca.key"
        self.index_path = self.dir / "issued.json"
        self.crl_path = self.dir / "crl.pem"

    # -- creation ---------------------------------------------------------------------------
    def init(self, cn: str = "edgemon broker CA", days: int = CA_DAYS) -> Path:
        """Make the CA (refused if one exists here: re-making it would orphan every certificate)."""
        if self.cert_path.exists() or self.key_path.exists():
            raise PkiError(f"{self.dir}: a CA exists already (ca.crt/ca.key); use it, or choose another folder")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write(self.key_path, _key_pem(key), 0o600)
        _write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self._save_index({})
        self.write_crl()
        return self.cert_path

    def _load(self):
        if not (self.cert_path.exists() and self.key_path.exists()):
            raise PkiError(f"{self.dir}: no CA here (ca.crt, ca.key); make one with `edgemon broker ca init {self.dir}`")
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        return cert, key

    def _index(self) -> dict:
        return json.loads(self.index_path.read_text()) if self.index_path.exists() else {}

    def _save_index(self, index: dict) -> None:
        _write(self.index_path, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode(), 0o644)

    def _issue(self, cn: str, kind: str, out_dir: Path, stem: str, hosts: list[str] = (),
               days: int = LEAF_DAYS) -> Issued:
        ca_cert, ca_key = self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if hosts:
            names = []
            for h in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    names.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        out_dir = Path(out_dir)
        issued = Issued(out_dir / f"{stem}.crt", out_dir / f"{stem}.key", serial)
        _write(issued.key, _key_pem(key), 0o600)
        _write(issued.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        index = self._index()
        index[str(serial)] = {"cn": cn, "kind": kind, "not_after": cert.not_valid_after_utc.isoformat(),
                              "revoked": None}
        self._save_index(index)
        return issued

    def server(self, out_dir: Path, hosts: list[str]) -> Issued:
        """The broker's certificate; `hosts` are the names and addresses the nodes connect to."""
        if not hosts:
            raise PkiError("the server certificate needs the broker's host names or addresses "
                           "(--host mqtt.bureau.example --host 10.0.0.5): clients check them")
        return self._issue(hosts[0], "server", out_dir, "server", hosts=hosts)

    def node(self, out_dir: Path, site: str, node: str) -> Issued:
        """A node's client certificate: CN `SITE.NODE`, the node's broker account."""
        from .contract import ID_RE

        for what, ident in (("site", site), ("node", node)):
            if not ID_RE.fullmatch(ident):
                raise PkiError(f"{what} {ident!r} is not an identifier (letters, digits, _ and -)")
        return self._issue(f"{site}.{node}", "node", out_dir, f"{site}.{node}")

    # -- revocation -------------------------------------------------------------------------
    def revoke(self, cn: str) -> list[int]:
        """Revoke every live certificate issued to `cn`; rebuilds crl.pem. Returns their serials."""
        index = self._index()
        hit = [s for s, e in index.items() if e["cn"] == cn and not e["revoked"]]
        stamp = _now().isoformat()
        for s in hit:
            index[s]["revoked"] = stamp
        if hit:
            self._save_index(index)
        self.write_crl()
        return [int(s) for s in hit]

    def revoked(self) -> dict[int, str]:
        return {int(s): e["cn"] for s, e in self._index().items() if e["revoked"]}

    def write_crl(self, days: int = 3650) -> Path:
        """The CRL (Mosquitto `crlfile`). Long-lived on purpose: Mosquitto refuses every client when
        its CRL has passed nextUpdate, so a forgotten renewal would lock the whole fleet out."""
        ca_cert, ca_key = self._load()
        now = _now()
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
             .last_update(now - dt.timedelta(minutes=5)).next_update(now + dt.timedelta(days=days)))
        for s, e in self._index().items():
            if e["revoked"]:
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(s))
                    .revocation_date(dt.datetime.fromisoformat(e["revoked"])).build())
        crl = b.sign(ca_key, hashes.SHA256())
        _write(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
        return self.crl_path
