"""Pure builders for the wire payloads: the data record and the node status (docs/ARCHITECTURE.md section 3).
JSON is written by hand: key order is part of the contract and MicroPython dicts are unordered."""
import struct
from binascii import hexlify
from compat import const

FW_VERSION = "0.4.0"  # 0.4.0: end-to-end confirmation (a record stays on flash until the gateway has it)

_F32 = bytearray(4)
# A record's flat rows, as reccodec.decode fills them (its _ROW_* offsets, the same numbers)
_ROW_VALUE = const(0)
_ROW_FLAG = const(1)
_ROW_F32 = const(2)
_ROW_N = const(3)


def _is_finite(x):
    return x == x and x not in (float("inf"), float("-inf"))


def format_number(v, f32=False):
    """JSON text for a reading value. None and NaN/inf -> null. Ints stay ints.
    f32=True: shortest of %.6g..%.9g that maps back to the same float32 (35.2f -> "35.2", never
    a changed float32). Otherwise %.15g..%.17g: shortest that round-trips the double."""
    if v is None:
        return "null"
    if type(v) is int:
        return "%d" % v
    if not _is_finite(v):
        return "null"
    if f32 and -3.4e38 < v < 3.4e38:  # scaled past float32 range: CPython's pack would raise
        struct.pack_into(">f", _F32, 0, v)
        target = struct.unpack(">f", _F32)[0]
        for p in (6, 7, 8, 9):
            s = "%.*g" % (p, v)
            struct.pack_into(">f", _F32, 0, float(s))
            if struct.unpack(">f", _F32)[0] == target:
                return s
        return "%.9g" % v
    for p in (15, 16, 17):
        s = "%.*g" % (p, v)
        if float(s) == v:
            return s
    return "%.17g" % v


def _str(s):
    # Identifiers, params, flags and clk are restricted ASCII (validated), so no escaping is needed;
    # refuse anything else rather than emit broken JSON.
    for ch in s:
        if ch == '"' or ch == "\\" or ch < " ":
            raise ValueError("unsafe character in JSON string")
    return '"' + s + '"'


def put_record_rows(out, ts_ms, seq, clk, params, rows):
    """A data record appended to the bytearray out (the node reuses one preallocated buffer: only
    small pieces are allocated, never the whole record, so a fragmented heap does not fail).
    rows: flat, value/flag/is_f32 of params[i] at 3i (reccodec.decode into a list); flag None:
    not sampled, left out."""
    out.extend(('{"ts":%d,"seq":%d,"clk":%s,"readings":{' % (ts_ms, seq, _str(clk))).encode())
    sep = ""
    for i in range(len(params)):
        j = _ROW_N * i
        v = rows[j + _ROW_VALUE]
        f = rows[j + _ROW_FLAG]
        f32 = rows[j + _ROW_F32]
        if f is None:
            continue  # not sampled in this record (an analyzer with a longer poll_s)
        out.extend(('%s%s:{"v":%s,"f":%s}' % (sep, _str(params[i]), format_number(v, f32), _str(f))).encode())
        sep = ","
    out.extend(b"}}")


def build_event(ts_ms, kind, detail_json="null"):
    """{"ts":..,"kind":"..","detail":<json>}; detail_json is already JSON text."""
    return ('{"ts":%d,"kind":%s,"detail":%s}' % (ts_ms, _str(kind), detail_json)).encode()


def append_member(payload, key, json_value):
    """Insert ,"key":value as the last member of a top-level object."""
    return payload[:-1] + (',"%s":%s}' % (key, json_value)).encode()


def sig_tail(mac_bytes):
    """The node's one signing rule (docs/ARCHITECTURE.md section 3): a signed payload is the unsigned
    one with its closing brace replaced by this, the sig member (hex HMAC-SHA256 over the exact
    unsigned bytes) and the brace. sign(), signed_parts() and the replay batch all end with it."""
    return b',"sig":"' + hexlify(mac_bytes) + b'"}'


def signed_parts(payload, mac):
    """The signed payload as pieces to send back to back (no copy of a long payload); mac is an
    hmac_sha256.HmacSha256, None when the site has no key (the payload is sent as it is)."""
    if mac is None:
        return [payload]
    return [memoryview(payload)[:-1], sig_tail(mac.digest(payload))]


def sign(payload, mac):
    """The signed payload in one piece (the last will: the broker needs it whole)."""
    if mac is None:
        return payload
    return payload[:-1] + sig_tail(mac.digest(payload))


def _num_or_null(v):
    return "null" if v is None else "%d" % v


def build_status(up_s, heap_free, heap_peak, queue, clk="ntp", rssi=None, dropped=0, errors=0,
                 state="online", fw=FW_VERSION, cn=None):
    """Retained status payload; members after "clk" are extras the gateway may ignore. cn: the
    connection id [boot, connection] that this connection's will carries too (offline(cn))."""
    return ('{"state":%s,"fw":%s,"up":%d,"heap":%d,"heap_peak":%d,"rssi":%s,"queue":%d,"clk":%s,'
            '"dropped":%d,"errors":%d%s}'
            % (_str(state), _str(fw), up_s, heap_free, heap_peak, _num_or_null(rssi), queue, _str(clk),
               dropped, errors, "" if cn is None else ',"cn":[%d,%d]' % (cn[0], cn[1]))).encode()


def offline(cn):
    """The offline status (the last will, signed at connect time, and the clean stop's own) of
    connection cn = [boot, connection]: the gateway believes it only for that connection."""
    return ('{"state":"offline","cn":[%d,%d]}' % (cn[0], cn[1])).encode()

