"""Node keys and signatures: the keys file, the per-topic verifier and its wrong-key diagnosis."""

import os
import re

import pytest

from edgemon.contract import ContractError, parse_data
from edgemon.keys import KeysError, Verifier, load_keys, signed_payload


def test_wrong_key_diagnosis_is_rate_limited_per_topic():
    """Naming whose key signed a forged payload costs one HMAC per key: at most once a minute per topic."""
    ka, kb = bytes(range(32)), bytes(range(1, 33))
    v = Verifier({"s1/a": ka, "s1/b": kb})
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1.0,"f":"N"}}}'
    forged = signed_payload(body, kb)  # b's key on a's topic
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", forged)
    with pytest.raises(ContractError, match="does not match the key of s1/a"):
        v.check("s1", "a", forged)  # within the minute: no second scan of every key
    v._diagnosed["s1/a"] -= 61
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", forged)


def test_keys_file_must_be_private(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[keys]\n"s1/n1" = "' + "ab" * 32 + '"\n')
    os.chmod(path, 0o644)
    with pytest.raises(KeysError, match=f"chmod 600 {re.escape(str(path))}"):
        load_keys(path)
    os.chmod(path, 0o600)
    assert load_keys(path) == {"s1/n1": bytes.fromhex("ab" * 32)}
    path.write_text('[keys]\n"s1/n1" = "abcd"\n')
    with pytest.raises(KeysError, match="use at least 16"):
        load_keys(path)


def test_verifier_uses_the_topic_node_key():
    keys = {"s1/a": b"k" * 32, "s1/b": b"j" * 32}
    v = Verifier(keys)
    body = b'{"ts":1764000000000,"seq":1,"readings":{"w01018":{"v":1,"f":"N"}}}'
    v.check("s1", "a", signed_payload(body, keys["s1/a"]))
    v.check("other", "x", body)  # a site without keys needs no signature
    with pytest.raises(ContractError, match="signed with the key of s1/b"):
        v.check("s1", "a", signed_payload(body, keys["s1/b"]))
    with pytest.raises(ContractError, match="sig: missing"):
        Verifier(keys, require_all=True).check("other", "x", body)
    assert parse_data(signed_payload(body, keys["s1/a"]))[0].seq == 1
