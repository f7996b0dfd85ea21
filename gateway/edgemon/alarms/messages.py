"""SMS texts in Chinese from the templates in data/sms_templates.toml and the parameter names in
data/params.toml. Pure: a transition in, text out; times shown in Asia/Shanghai."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta, timezone

from .config import DATA_DIR

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no DST in China since 1991


def _load(name: str) -> dict:
    return tomllib.loads((DATA_DIR / name).read_text("utf-8"))


TEMPLATES = _load("sms_templates.toml")
PARAMS = _load("params.toml")


def local_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).strftime("%m月%d日%H:%M")


def duration(ms: int) -> str:
    if ms < 60_000:  # "持续0分钟" would read as if nothing happened
        return f"{max(0, int(ms // 1000))}秒"
    minutes = int(ms // 60_000)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时"
    if hours:
        return f"{hours}小时{mins}分钟" if mins else f"{hours}小时"
    return f"{mins}分钟"


def number(v: float | None) -> str:
    if v is None:
        return "无"
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def param_name(code: str) -> str:
    return PARAMS.get(code, {}).get("name", code)


def unit(code: str) -> str:
    return PARAMS.get(code, {}).get("unit", "")


def flags_text(flags) -> str:
    names = TEMPLATES["flags"]
    return "、".join(f"{names.get(f, f)}({f})" for f in flags)


def excluded_note(excluded: dict[str, int]) -> str:
    counted = {f: n for f, n in (excluded or {}).items() if f != "insufficient"}
    if not counted:
        return ""
    return TEMPLATES["words"]["excluded"].format(n=sum(counted.values()), flags=flags_text(sorted(counted)))


def _fields(t: dict, site_name: str) -> dict:
    d = t.get("detail", {})
    param = t["param"]
    start = d.get("since_ms", t["start_ts"])  # flat line, fault flag: since the run began
    return {
        "site": site_name, "node": t["node"], "param": param_name(param) if param not in ("node", "clock", "queue") else "",
        "value": number(t.get("value")), "unit": unit(param), "limit": number(t.get("limit")),
        "start": local_time(start), "duration": duration(t["ts"] - start),
        "window": d.get("window", ""), "minutes": d.get("minutes", int((t["ts"] - t["start_ts"]) // 60_000)),
        "flag": flags_text(d.get("flags", [])), "detail": d.get("reason", ""),
        "flow": number(d.get("flow")), "excluded": excluded_note(t.get("excluded", {})),
        "what": TEMPLATES["words"].get(t["kind"], ""),
    }


def raise_text(t: dict, site_name: str) -> str:
    """t: a transition as a dict (site, node, param, rule, kind, ts, start_ts, value, limit, detail, excluded)."""
    templates = TEMPLATES["raise"]
    key = t["kind"]
    d = t.get("detail", {})
    if key == "instant" and d.get("range"):
        key = "range"
    elif key in ("instant", "mean") and d.get("side") == "low":
        key += "_low"
    fields = _fields(t, site_name)
    if key == "range":
        lo, hi = d["range"]
        fields["limit"] = f"{number(lo)}-{number(hi)}"
    if t["kind"] == "offline":
        fields["start"] = local_time(d.get("last_ms", t["start_ts"]))
    return templates[key].format(**fields).strip()


def clear_text(t: dict, site_name: str) -> str:
    return TEMPLATES["clear"]["default"].format(**_fields(t, site_name)).strip()


def escalation_text(t: dict, raise_message: str, now_ms: int) -> str:
    return TEMPLATES["escalation"]["default"].format(duration=duration(now_ms - t["start_ts"]), text=raise_message)


def summary_item(t: dict, site_name: str, event: str) -> str:
    f = _fields(t, site_name)
    what = f["what"] + (TEMPLATES["words"]["cleared"] if event == "cleared" else "")
    return TEMPLATES["summary"]["item"].format(site=site_name, param=f["param"], what=what)


def summary_text(items: list[str]) -> str:
    s = TEMPLATES["summary"]
    max_chars = int(s.get("max_chars", 200))
    text = s["head"].format(n=len(items))
    for i, item in enumerate(items):
        more = s["more"].format(n=len(items))
        if len(text) + len(item) + (len(more) if i < len(items) - 1 else 0) > max_chars:
            return text + more
        text += item
    return text
