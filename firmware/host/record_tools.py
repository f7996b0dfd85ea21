"""Whole-payload builders on top of record.py: a record from a readings dict or list, from the
flash queue's rows, and a batch from record bytes. For tests and PC tools; the node builds what it
sends piece by piece in one reused buffer (record.put_record_rows) and never loads this module."""
from record import _str, format_number, put_record_rows


def build_record(ts_ms, seq, clk, readings, f32_params=None):
    """Data record as UTF-8 bytes: {"ts":..,"seq":..,"clk":"..","readings":{"w01018":{"v":35.2,"f":"N"}}}.
    readings: list of (param, value, flag) in the wanted order, or a dict param -> (value, flag)
    (emitted in sorted order). f32_params: params whose value came from a float32 register.
    Ends with "}" so a later signer can strip it and append ,"sig":"<hex>"} (see sign hook)."""
    parts = ['{"ts":%d,"seq":%d,"clk":%s,"readings":{' % (ts_ms, seq, _str(clk))]
    if isinstance(readings, dict):
        items = [(k, readings[k][0], readings[k][1]) for k in sorted(readings.keys())]
    else:
        items = readings
    first = True
    for param, v, f in items:
        if not first:
            parts.append(",")
        first = False
        f32 = f32_params is not None and param in f32_params
        parts.append('%s:{"v":%s,"f":%s}' % (_str(param), format_number(v, f32), _str(f)))
    parts.append("}}")
    return "".join(parts).encode()


def build_record_rows(ts_ms, seq, clk, params, rows):
    """Record bytes from the flash queue's form: rows[i] = (value, flag, is_float32) for params[i]
    (flag None: not sampled, left out).
    The node publishes only this (read back from flash), so a replay is byte-identical."""
    flat = []
    for r in rows:
        flat.extend(r)
    out = bytearray()
    put_record_rows(out, ts_ms, seq, clk, params, flat)
    return bytes(out)


def build_batch(records):
    """{"batch":[record,...]} from record bytes (unsigned: DESIGN says records in a batch carry no sig)."""
    return b'{"batch":[' + b",".join(records) + b"]}"


OFFLINE = b'{"state":"offline"}'  # firmware 0.2's will, without a connection id (tests, tools)
