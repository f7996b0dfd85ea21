"""InfluxDB line protocol for the schema in docs/ARCHITECTURE.md section 4 (`reading`, `node`, and the
gateway's own `ingest`). Pure: the same inputs always give the same lines, which keeps replays
idempotent. Timestamps are in ms (the writer uses precision=ms)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

from .contract import FLAGS, Event, Record, Status


def _escape(text: str, specials: str) -> str:
    if "\n" in text or "\r" in text:
        # Line protocol cannot carry a line break in a name; our identifiers never have one.
        raise ValueError(f"line break in a line-protocol name: {text!r}")
    for ch in specials:
        if ch in text:
            text = text.replace(ch, "\\" + ch)
    return text


def escape_measurement(name: str) -> str:
    if not name:
        raise ValueError("empty measurement name")
    return _escape(name, ", ")


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys: comma, equals sign and space are escaped."""
    if not key:
        raise ValueError("empty tag or field key/value")
    return _escape(key, ",= ")


escape_tag_value = escape_key


def escape_string_field(value: str) -> str:
    """A string field value, with its surrounding double quotes. Newlines become the two characters
    `\\n` (`\\r` likewise): the store and the writer split batches into points on newlines, so a
    raw one would let a string field smuggle whole points in."""
    v = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + v + '"'


def format_float(value: float) -> str:
    """A float field: always written as a float (`35.0`, never `35` or `35i`)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"line protocol cannot carry {number!r}")
    # repr is the shortest text that reads back as the same double: '35.0', '0.1', '1e+16'.
    return repr(number)


def _field_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return escape_string_field(value)
    if isinstance(value, (int, float)):
        return format_float(value)
    raise TypeError(f"unsupported field value {value!r}")


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, object], time_ms: int) -> str:
    """One point. Tags are sorted by key (InfluxDB's preferred order); fields keep the given order;
    int and float field values are both written as floats."""
    if not fields:
        raise ValueError(f"a point needs at least one field ({measurement})")
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        parts.append(f"{escape_key(key)}={escape_tag_value(tags[key])}")
    head = ",".join(parts)
    body = ",".join(f"{escape_key(k)}={_field_value(v)}" for k, v in fields.items())
    return f"{head} {body} {int(time_ms)}"


def reading_lines(site: str, node: str, record: Record) -> list[str]:
    """One `reading` point per parameter of the record, at the record's sample time.
    `value` is left out when the node sent null; `flag` is always there.
    Same text as line("reading", {"site", "node", "param"}, {"value", "flag"}, ts), built from
    cached pieces: the escaped series key per (site, node, param) and the flag field per flag."""
    lines = []
    readings = record.readings
    ts = " " + str(int(record.ts))
    for param in sorted(readings):
        reading = readings[param]
        value = reading.value
        number = None if value is None else float(value)
        head = _READING_HEADS.get((site, node, param))
        if head is None:
            head = _reading_head(site, node, param)
        if number is not None and number - number != 0.0:  # inf or nan
            raise ValueError(f"line protocol cannot carry {number!r}")
        flag = reading.flag
        field = _FLAG_FIELDS.get(flag) if type(flag) is str else None
        if field is None:
            field = "flag=" + _field_value(flag)
        if number is None:
            lines.append(head + field + ts)
        else:
            lines.append(head + "value=" + repr(number) + "," + field + ts)
    return lines


_READING_HEADS: dict[tuple[str, str, str], str] = {}
_READING_HEADS_MAX = 200_000
_FLAG_FIELDS = {f: "flag=" + escape_string_field(f) for f in FLAGS}


def _reading_head(site: str, node: str, param: str) -> str:
    """`reading,node=..,param=..,site=.. ` (tags sorted by key); raises like escape_tag_value."""
    head = (f"reading,node={escape_tag_value(node)},param={escape_tag_value(param)},"
            f"site={escape_tag_value(site)} ")
    if len(_READING_HEADS) >= _READING_HEADS_MAX:
        _READING_HEADS.clear()
    _READING_HEADS[(site, node, param)] = head
    return head


def records_lines(site: str, node: str, records: Iterable[Record]) -> list[str]:
    out: list[str] = []
    for record in records:
        out.extend(reading_lines(site, node, record))
    return out


def node_line(
    site: str, node: str, status: Status, receive_ms: int, clock_offset_ms: float | None = None
) -> str:
    """A `node` point at the time the gateway received the status."""
    fields: dict[str, object] = {"online": status.state == "online"}
    if status.fw is not None:
        fields["fw"] = status.fw
    for name in ("heap", "rssi", "queue", "up"):  # up: seconds since the node booted
        value = getattr(status, name)
        if value is not None:
            fields[name] = float(value)
    if clock_offset_ms is not None:
        fields["clock_offset_ms"] = float(clock_offset_ms)
    return line("node", {"site": site, "node": node}, fields, receive_ms)


def ingest_line(
    site: str, node: str, *, lag_ms_last: float, lag_ms_max: float, records: int, time_ms: int
) -> str:
    """The gateway's view of one node over a reporting window: how late records arrived."""
    fields = {"lag_ms_last": float(lag_ms_last), "lag_ms_max": float(lag_ms_max), "records": float(records)}
    return line("ingest", {"site": site, "node": node}, fields, time_ms)


_MEMBER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NOT_MEMBERS = ("detail", "time", "kind")  # our own field, InfluxDB's reserved key, the tag
EVENT_MEMBERS_MAX = 32
EVENT_STRING_MAX = 256


def event_line(site: str, node: str, event: Event) -> str:
    """An `event` point (tags site, node, kind) at the node's own event time (so a redelivered
    event rewrites the same point): `detail` as compact JSON text, and each top-level member of an
    object detail that is a number, a boolean or a short string also as a field of its own
    (queue_overflow: dropped, total, lost; boot: fw, seq, queue, repaired_bytes)."""
    fields: dict[str, object] = {
        "detail": json.dumps(event.detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False)}
    if isinstance(event.detail, dict):
        for key, value in sorted(event.detail.items())[:EVENT_MEMBERS_MAX]:
            if key in _NOT_MEMBERS or not _MEMBER_RE.fullmatch(key):
                continue
            if isinstance(value, bool):
                fields[key] = value
            elif isinstance(value, (int, float)):
                try:
                    number = float(value)
                except OverflowError:
                    continue
                if math.isfinite(number):
                    fields[key] = number
            elif isinstance(value, str) and len(value) <= EVENT_STRING_MAX:
                fields[key] = value
    return line("event", {"site": site, "node": node, "kind": event.kind}, fields, event.ts)
