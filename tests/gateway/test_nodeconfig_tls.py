"""`edgemon node config` with MQTT over TLS: the inventory's broker tls_ca / tls_mutual /
tls_server_hostname give node.json's mqtt.tls (board paths under /certs), and the DER copies of the
CA (and of the node's provisioned certificate and key) are written beside node.json, readable by
`cryptography`, the key 0600; the firmware's validator passes the result. Refusals: a CA file that
is not there or not a certificate, mutual TLS without a provisioned certificate or with one from
another CA, TLS settings without tls_ca, unknown broker fields; every problem at once, nothing written."""

import json
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgemon.cli import main
from edgemon.nodeconfig import _firmware_validator, certs_dir
from edgemon.pki import CertificateAuthority

SITE, NODE = "qd-plant", "node01"
SECRETS = {"site": SITE, "node": NODE, "mqtt": {"user": "qd-plant.node01", "password": "pw-1"}, "key": "ab" * 32}


def inventory(broker: str) -> str:
    return f"""format = 1
[sites.{SITE}]
poll_s = 10
broker = {broker}
[sites.{SITE}.nodes.{NODE}]
bus = {{ kind = "rtu", uart = 2, baud = 9600, tx = 17, rx = 16, de = 4 }}
analyzers = [{{ name = "cod", profile = "cod_hach_cdab", unit = 1 }}]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(d / "ca")
    ca.init()
    other = CertificateAuthority(d / "other")
    other.init(cn="someone else's CA")
    return dict(d=d, ca=ca, other=other)


def run(tmp_path, broker, provisioned_by=None):
    """node config for SITE/NODE; provisioned_by: a CA that issued the node's certificate beside the secrets."""
    (tmp_path / "sites.toml").write_text(inventory(broker))
    sec = tmp_path / "provisioned" / f"{SITE}.{NODE}.secrets.json"
    sec.parent.mkdir(exist_ok=True)
    sec.write_text(json.dumps(SECRETS))
    if provisioned_by is not None:
        provisioned_by.node(sec.parent, SITE, NODE)
    out = tmp_path / "out" / f"{SITE}.{NODE}.json"
    out.parent.mkdir(exist_ok=True)
    r = CliRunner().invoke(main, ["node", "config", "--inventory", str(tmp_path / "sites.toml"), "--secrets",
                                  str(sec), SITE, NODE, "-o", str(out)])
    return r, out


def test_tls_with_the_ca_pinned_writes_the_ca_der_beside_node_json(tmp_path, pki):
    ca = pki["ca"]
    r, out = run(tmp_path, f'{{ host = "mqtt.bureau.example", tls_ca = "{ca.cert_path}" }}')
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.read_text())
    assert cfg["mqtt"]["port"] == 8883  # TLS's port unless given
    assert cfg["mqtt"]["tls"] == {"ca": "/certs/ca.der"}
    certs = certs_dir(out)
    assert certs == out.parent / f"{SITE}.{NODE}.certs" and sorted(p.name for p in certs.iterdir()) == ["ca.der"]
    der = (certs / "ca.der").read_bytes()
    assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    assert "TLS with the CA pinned: ca.der in " in r.output, r.output
    validate, _ = _firmware_validator()
    assert validate(json.loads(json.dumps(cfg)))["mqtt"]["tls"]["ca"] == "/certs/ca.der"
    # a relative tls_ca is the inventory's folder's; an explicit port is kept
    (tmp_path / "bureau-ca").mkdir()
    (tmp_path / "bureau-ca" / "ca.crt").write_bytes(ca.cert_path.read_bytes())
    r, out = run(tmp_path, '{ host = "10.20.0.5", port = 18883, tls_ca = "bureau-ca/ca.crt", '
                           'tls_server_hostname = "mqtt.bureau.example" }')
    assert r.exit_code == 0, r.output
    mqtt = json.loads(out.read_text())["mqtt"]
    assert mqtt["port"] == 18883 and mqtt["tls"] == {"ca": "/certs/ca.der", "server_hostname": "mqtt.bureau.example"}


def test_mutual_tls_takes_the_provisioned_certificate(tmp_path, pki):
    ca = pki["ca"]
    r, out = run(tmp_path, f'{{ host = "10.20.0.5", tls_ca = "{ca.cert_path}", tls_mutual = true }}', provisioned_by=ca)
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.read_text())
    assert cfg["mqtt"]["tls"] == {"ca": "/certs/ca.der", "cert": "/certs/node.der", "key": "/certs/node.key.der"}
    certs = certs_dir(out)
    node_cert = x509.load_der_x509_certificate((certs / "node.der").read_bytes())
    assert node_cert.subject.rfc4514_string().startswith(f"CN={SITE}.{NODE},")
    node_cert.verify_directly_issued_by(x509.load_der_x509_certificate((certs / "ca.der").read_bytes()))
    key = serialization.load_der_private_key((certs / "node.key.der").read_bytes(), None)
    assert key.public_key().public_numbers() == node_cert.public_key().public_numbers()
    assert stat.S_IMODE((certs / "node.key.der").stat().st_mode) == 0o600
    validate, _ = _firmware_validator()
    validate(json.loads(json.dumps(cfg)))
    # back to TLS with a password only: the node's certificate files go from the folder
    r, out = run(tmp_path, f'{{ host = "10.20.0.5", tls_ca = "{ca.cert_path}" }}')
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in certs.iterdir()) == ["ca.der"]


def test_refusals_name_the_inventory_field_and_the_fix_and_write_nothing(tmp_path, pki):
    inv = str(tmp_path / "sites.toml")
    # no CA file, and mutual without a provisioned certificate: both in one run
    r, out = run(tmp_path, f'{{ host = "10.20.0.5", tls_ca = "{tmp_path}/nope/ca.crt", tls_mutual = true }}')
    assert r.exit_code == 1 and not out.exists() and not certs_dir(out).exists(), r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith(inv)]
    assert len(lines) == 2, r.output
    assert f"sites.{SITE}.broker.tls_ca: {tmp_path}/nope/ca.crt: cannot be read" in lines[0]
    assert "edgemon broker ca init" in lines[0]
    assert f"sites.{SITE}.broker.tls_mutual: true, but the node's client certificate is not provisioned" in lines[1]
    assert f"{SITE}.{NODE}.crt" in lines[1] and "edgemon node provision --ca" in lines[1], lines[1]
    # a node certificate from another CA than the broker's
    r, out = run(tmp_path, f'{{ host = "10.20.0.5", tls_ca = "{pki["ca"].cert_path}", tls_mutual = true }}',
                 provisioned_by=pki["other"])
    assert r.exit_code == 1 and not out.exists(), r.output
    assert "tls_mutual:" in r.output and "was not issued by tls_ca" in r.output, r.output
    # not a certificate; TLS settings without a CA; a misspelt field
    (tmp_path / "junk.crt").write_text("hello")
    r, out = run(tmp_path, f'{{ host = "10.20.0.5", tls_ca = "{tmp_path}/junk.crt", tls_mutal = true }}')
    assert r.exit_code == 1 and not out.exists(), r.output
    assert "junk.crt: not a PEM certificate" in r.output and "broker.tls_mutal: unknown field" in r.output
    r, out = run(tmp_path, '{ host = "10.20.0.5", port = 8883, tls_mutual = true }')
    assert r.exit_code == 1 and "tls_mutual: given without tls_ca" in r.output, r.output
