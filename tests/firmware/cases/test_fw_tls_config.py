"""mqtt.tls in the node config (config.py) and the certificate reading of mqtt_tls_link.py, under
both interpreters: TLS only with a pinned CA, both halves of a client certificate or neither, 8883
by default, every error naming its field and its fix; PEM (inline or a file) read as DER; a socket
that brings its own poller (CPython's TLS socket) gets it from sockio.poller."""
from binascii import b2a_base64
from config import validate_config, ConfigError
from fakes import good_config, make_tmpdir, rmtree, raises


def _tls(tls, port=None):
    cfg = good_config()
    del cfg["mqtt"]["port"]
    if port is not None:
        cfg["mqtt"]["port"] = port
    cfg["mqtt"]["tls"] = tls
    return cfg


def _errors(cfg):
    e = raises(ConfigError, validate_config, cfg)
    return dict(e.errors)


def test_tls_with_a_pinned_ca_defaults_to_8883():
    m = validate_config(_tls({"ca": "/certs/ca.der"}))["mqtt"]
    assert m["port"] == 8883 and m["tls"]["ca"] == "/certs/ca.der" and m["tls"]["server_hostname"] is None
    m = validate_config(_tls({"ca": "/certs/ca.der", "cert": "/certs/n.der", "key": "/certs/n.key",
                              "server_hostname": "mqtt.example"}, 18883))["mqtt"]
    assert m["port"] == 18883 and m["tls"]["key"] == "/certs/n.key"
    cfg = good_config()
    del cfg["mqtt"]["port"]
    assert validate_config(cfg)["mqtt"]["port"] == 1883  # no TLS: plain MQTT's port
    cfg = _tls(None)
    assert validate_config(cfg)["mqtt"]["port"] == 1883  # null: no TLS


def test_tls_without_a_ca_is_refused_with_the_fix():
    for tls in ({}, {"cert": "/c.der", "key": "/k.der"}):
        e = _errors(_tls(tls))
        r = e["mqtt.tls.ca"]
        assert r.startswith("missing: TLS without a pinned CA is refused") and "fix:" in r, r
    r = _errors(_tls(True))["mqtt.tls"]
    assert "must be an object" in r and "fix:" in r, r


def test_bad_tls_fields_all_at_once():
    e = _errors(_tls({"ca": "", "cert": 5, "cafile": "/x", "server_hostname": ""}))
    assert "must be the path of a file on the node or inline PEM text" in e["mqtt.tls.ca"]
    assert "fix:" in e["mqtt.tls.ca"] and "got 5" in e["mqtt.tls.cert"]
    assert e["mqtt.tls.cafile"].startswith("unknown key (typo?); allowed keys: ca, cert, key, server_hostname")
    assert "missing: mutual TLS needs both" in e["mqtt.tls.key"] and "fix:" in e["mqtt.tls.key"]
    assert "non-empty" in e["mqtt.tls.server_hostname"]
    e = _errors(_tls({"ca": "/ca.der", "key": "/k.der"}))
    assert list(e) == ["mqtt.tls.cert"], e
    e = _errors(_tls({"ca": "-----BEGIN CERTIFICATE-----\nMIIB"}))
    assert "inline PEM must hold a whole" in e["mqtt.tls.ca"], e


_DER = bytes(range(40)) + b"\x00\xff" * 20
_B64 = b2a_base64(_DER[:45]).decode().strip() + "\n" + b2a_base64(_DER[45:]).decode().strip()  # two PEM lines


def test_pem_is_read_as_der_inline_or_from_a_file():
    import mqtt_tls_link
    pem = "-----BEGIN CERTIFICATE-----\n" + _B64 + "\n-----END CERTIFICATE-----\n"
    assert mqtt_tls_link._der(pem) == _DER
    d = make_tmpdir()
    try:
        for name, data in (("a.pem", pem.replace("\n", "\r\n").encode()), ("a.der", _DER)):
            with open(d + "/" + name, "wb") as f:
                f.write(data)
            assert mqtt_tls_link._der(d + "/" + name) == _DER, name
        log = []
        f = mqtt_tls_link.socket_factory({"ca": d + "/missing.der"}, "127.0.0.1", log.append)
        assert log and log[0].startswith("error mqtt.tls.ca: cannot load ") and "fix:" in log[0], log
        e = raises(OSError, f, "127.0.0.1", 1, 100)  # refused before any connection is tried
        assert "mqtt.tls.ca: cannot load" in str(e), str(e)
        log = []
        mqtt_tls_link.socket_factory({"ca": d + "/a.der"}, "127.0.0.1", log.append)  # not a certificate
        assert log and log[0].startswith("error mqtt.tls.ca: cannot load ") and "cert" in log[0], log
    finally:
        rmtree(d)


class _OwnPoll:
    def poller(self):
        return "its own"


def test_a_socket_may_bring_its_own_poller():
    import sockio
    assert sockio.poller(_OwnPoll()) == "its own"
