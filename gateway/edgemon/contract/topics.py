"""Topics: `edge/v1/{site}/{node}/{kind}` -> Topic, remembered once valid (a gateway sees the same
few thousand topics over and over)."""

from __future__ import annotations

from .model import ID_RE, KINDS, TOPIC_PREFIX, ContractError, Topic


def parse_topic(topic: str) -> Topic:
    """`edge/v1/{site}/{node}/{data|status|event|cmd|cmd/ack}` -> Topic."""
    # Pure, and a gateway sees the same few thousand topics over and over: remember the valid ones
    # (a Topic is immutable). Invalid topics are not remembered: each raises again, as before.
    t = _TOPICS.get(topic)
    if t is None:
        t = _parse_topic(topic)
        if len(_TOPICS) >= _TOPICS_MAX:
            _TOPICS.clear()
        _TOPICS[topic] = t
    return t


_TOPICS: dict[str, Topic] = {}
_TOPICS_MAX = 100_000


def _parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    expected = "expected edge/v1/{site}/{node}/{" + "|".join(KINDS) + "}"
    if len(parts) < 5 or tuple(parts[:2]) != TOPIC_PREFIX:
        if len(parts) >= 2 and parts[0] == "edge" and parts[1] != "v1":
            raise ContractError(f"topic {topic!r}: unsupported contract version {parts[1]!r} ({expected})")
        raise ContractError(f"topic {topic!r}: {expected}")
    site, node, kind = parts[2], parts[3], "/".join(parts[4:])
    for what, ident in (("site", site), ("node", node)):
        if not ID_RE.fullmatch(ident):
            raise ContractError(
                f"topic {topic!r}: {what} {ident!r} is not an identifier ([A-Za-z0-9_-]{{1,64}})"
            )
    if kind not in KINDS:
        raise ContractError(f"topic {topic!r}: unknown kind {kind!r} ({expected})")
    return Topic(site, node, kind)
