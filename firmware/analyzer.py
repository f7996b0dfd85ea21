"""One analyzer on a Modbus link: plans block reads, decodes values, maps status to HJ 212 flags,
counts its health, keeps its own poll period and backs off while it does not answer."""
from compat import ticks_ms, ticks_diff, ticks_add, call_once, const
from modbus_rtu import ModbusException, FrameError
from modbus_master import ModbusTimeout
from decode import decode, bit_field
from compat import FLAGS  # the node's one definition

_STATUS = const(-1)  # member index marking the status register inside a read block
_BACKOFF_FIRST_MS = const(1000)
BACKOFF_CAP_MS = 60000
_CODE = const(0)  # status kinds (nodesetup._KINDS)
_BITS = const(1)
_ASCII = const(2)
_INF = float("inf")
# An analyzer's values, one flat tuple (nodesetup.init_analyzer builds it): _V_N entries a value,
# value i's at i * _V_N + these offsets.
_V_PARAM = const(0)
_V_FC = const(1)  # (not read while polling: the read blocks carry the fc)
_V_TYPE = const(2)
_V_ORDER = const(3)  # the word order, or a bit value's bit number
_V_MUL = const(4)
_V_DIV = const(5)
_V_OFFSET = const(6)
_V_LOW = const(7)  # range, None when the value has none
_V_HIGH = const(8)
_V_N = const(9)


def status_flag(kind, reg, table, default):
    """HJ 212 flag from a status register. code: table {value: flag}; bits: [(bit, flag), ...], first
    set bit wins, none set -> N; ascii_flag: the register holds the letter(s), e.g. 0x004E -> N,
    translated through table {"L": "T", ...}; HJ 212 letters pass as they are; anything else -> default."""
    if kind == _CODE:
        return table.get(reg, default)
    if kind == _BITS:
        for bit, flag in table:
            if bit_field(reg, bit):
                return flag
        return "N"
    hi = (reg >> 8) & 0xFF
    lo = reg & 0xFF
    text = (chr(hi) if hi else "") + (chr(lo) if lo else "")
    f = table.get(text)
    if f is not None:
        return f
    if len(text) == 1 and text in FLAGS:
        return text
    return default


def _mark(members, got, x):
    """got[value] = x for the values of one read block; True if the block holds the status."""
    st = False
    for k in range(0, len(members), 2):
        if members[k] == _STATUS:
            st = True
        else:
            got[members[k]] = x
    return st


class Analyzer:
    def __init__(self, cfg, master):
        # Startup-only code (block planning, scaling, config -> tuples) lives in nodesetup.py, which
        # is unloaded again: the poll loop never needs its bytecode.
        call_once("nodesetup", "init_analyzer", self, cfg, master)

    def due(self, now, slack_ms=0):
        return ticks_diff(now, self.next_due) >= -slack_ms

    def schedule(self, now):
        """Next poll one period after this one; a late poll does not make the next one early."""
        self.next_due = ticks_add(self.next_due, self.poll_ms)
        if ticks_diff(self.next_due, now) <= 0:
            self.next_due = ticks_add(now, self.poll_ms)

    def backing_off(self, now):
        return self.fails > 0 and ticks_diff(now, self.resume) < 0

    def sample(self, out, now=None):
        """Fill out[param] = (value or None, flag) for every value of this analyzer. A dead analyzer
        is asked again only after 1, 2, 4 ... 60 s; meanwhile its values are B without bus traffic."""
        if now is None:
            now = ticks_ms()
        if self.backing_off(now):
            self._all(out, "B")
            return
        vals = self.vals  # _V_N entries per value
        got = [None] * (len(vals) // _V_N)  # raw decoded value per value index, None if its block failed, "B" if unanswered
        status = None
        status_bad = None  # the status register's failure: "D" (answered, not with data) or "B" (no answer)
        answered = False
        # A known-dead analyzer gets one try, so it costs the others at most its own timeout.
        retries = 0 if self.fails else self.retries
        for fc, start, count, members in self.blocks:
            try:
                if fc <= 2:
                    data = self.master.read_bits(self.unit, fc, start, count, self.timeout_ms, retries, self.health)
                else:
                    data = self.master.read_registers(self.unit, fc, start, count, self.timeout_ms, retries,
                                                      self.health)
            except (ModbusTimeout, OSError) as e:
                if not answered or not isinstance(e, ModbusTimeout):
                    # Silent from its first request, or the link broke (each further read would
                    # reconnect and wait again): dead for now, the rest would time out too.
                    # (The exception is not kept: its traceback would stay in the heap; health counts it.)
                    self.fails += 1
                    back = _BACKOFF_FIRST_MS << (self.fails - 1) if self.fails < 8 else BACKOFF_CAP_MS
                    self.resume = ticks_add(now, back if back < BACKOFF_CAP_MS else BACKOFF_CAP_MS)
                    e = None
                    self._all(out, "B")
                    return
                e = None
                # It answered an earlier block: only this block's values went unanswered (B).
                if _mark(members, got, "B"):
                    status_bad = "B"
                continue
            except (ModbusException, FrameError):
                # It answered, but not with data: a device-side fault for those registers.
                answered = True
                if _mark(members, got, None) and status_bad is None:
                    status_bad = "D"
                continue
            answered = True
            for k in range(0, len(members), 2):
                member = members[k]
                off = members[k + 1]
                if member == _STATUS:
                    status = data[off]
                elif fc <= 2:
                    got[member] = data[off]
                else:
                    j = member * _V_N
                    if vals[j + _V_TYPE] == "bit":  # one bit of a register: _V_ORDER holds its number
                        got[member] = (data[off] >> vals[j + _V_ORDER]) & 1
                    else:
                        got[member] = decode(data, vals[j + _V_TYPE], vals[j + _V_ORDER], off)
        self.fails = 0
        flag = "N"
        if self.st_kind is not None and status is not None:
            flag = status_flag(self.st_kind, status, self.st_table, self.st_default)
        for i in range(len(got)):
            j = i * _V_N
            param = vals[j + _V_PARAM]
            mul = vals[j + _V_MUL]
            div = vals[j + _V_DIV]
            offset = vals[j + _V_OFFSET]
            low = vals[j + _V_LOW]
            high = vals[j + _V_HIGH]
            x = got[i]
            if x == "B" or status_bad == "B":
                out[param] = (None, "B")  # unanswered, or its status word was
                continue
            if x is None or status_bad or x != x or x == _INF or x == -_INF:
                # No value, an impossible one, or no status word to vouch for it: D (fault).
                out[param] = (None, "D")
                continue
            if div != 1:
                x = x / div
            elif mul != 1:
                x = x * mul
            if offset != 0:
                x = x + offset
            f = flag
            if f == "N" and low is not None and (x < low or x > high):
                f = "T"  # outside the analyzer's measuring range
            out[param] = (x, f)

    def _all(self, out, flag):
        vals = self.vals
        for j in range(0, len(vals), _V_N):
            out[vals[j + _V_PARAM]] = (None, flag)

    def health_json(self):
        h = self.health
        return '"%s":[%d,%d,%d,%d,%d]' % (self.name, h[0], h[1], h[2], h[3], h[4])
