"""The alarm core: rule observations through the per-alarm state machine (debounce before a
raise, hysteresis before a clear, one raise and one clear per episode, escalation after T) to
`alarm` points and SMS notices. Pure: all state lives in one JSON-serialisable dict (`mem`, which
the observer persists), every time is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import lineproto
from ..contract import Event, Record, Status
from . import messages, notify
from .config import AlarmsConfig, SiteConfig
from .notify import Notice
from .rules.base import BREACH, EXCLUDED, HOLD, WITHIN, Obs, Rule


@dataclass
class Output:
    lines: list[str] = field(default_factory=list)  # `alarm` points
    notices: list[Notice] = field(default_factory=list)  # SMS to queue now
    dropped: list[Notice] = field(default_factory=list)  # duplicates not sent
    transitions: list[dict] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.lines += other.lines
        self.notices += other.notices
        self.dropped += other.dropped
        self.transitions += other.transitions


def new_mem() -> dict:
    return {"version": 1, "rules": {}, "alarms": {}, "notify": notify.new_state()}


def alarm_key(site: str, node: str, param: str, rule: str) -> str:
    return f"{site}|{node}|{param}|{rule}"


def alarm_line(t: dict, message: str) -> str:
    fields: dict[str, object] = {"state": t["event"]}
    if t.get("value") is not None:
        fields["value"] = float(t["value"])
    if t.get("limit") is not None:
        fields["limit"] = float(t["limit"])
    fields["message"] = message
    tags = {"site": t["site"], "node": t["node"], "param": t["param"], "rule": t["rule"]}
    return lineproto.line("alarm", tags, fields, t["ts"])


class Engine:
    def __init__(self, cfg: AlarmsConfig):
        self.cfg = cfg

    # ------------------------------------------------------------------ inputs

    def records(self, mem: dict, site: str, node: str, records: list[Record], receive_ms: int) -> Output:
        return self._run(mem, site, receive_ms, lambda r, m: r.on_records(m, node, records, receive_ms))

    def status(self, mem: dict, site: str, node: str, status: Status, receive_ms: int) -> Output:
        return self._run(mem, site, receive_ms, lambda r, m: r.on_status(m, node, status, receive_ms))

    def event(self, mem: dict, site: str, node: str, event: Event, receive_ms: int) -> Output:
        return self._run(mem, site, receive_ms, lambda r, m: r.on_event(m, node, event, receive_ms))

    def tick(self, mem: dict, now_ms: int) -> Output:
        out = Output()
        for site in self.cfg.sites:
            out.extend(self._run(mem, site, now_ms, lambda r, m: r.on_tick(m, now_ms), flush=False))
        out.extend(self._escalate(mem, now_ms))
        out.notices += notify.flush(mem["notify"], now_ms, self.cfg.sms, messages.summary_text)
        return out

    # ------------------------------------------------------------------ core

    def _run(self, mem, site: str, wall_ms: int, call, flush: bool = True) -> Output:
        out = Output()
        sc = self.cfg.sites.get(site)
        if sc is None:
            return out  # a site without alarm config
        notices: list[Notice] = []
        for rule in sc.rules:
            rmem = mem["rules"].setdefault(f"{site}/{rule.id}", {})
            for obs in call(rule, rmem):
                t = self._step(mem, sc, rule, obs, wall_ms)
                if t is not None:
                    out.transitions.append(t)
                    out.lines.append(alarm_line(t, t["message"]))
                    notices += self._notices(mem, sc, t)
        if notices:
            send, dropped = notify.route(mem["notify"], notices, wall_ms, self.cfg.sms)
            out.notices += send
            out.dropped += dropped
        return out

    def _step(self, mem, sc: SiteConfig, rule: Rule, obs: Obs, wall_ms: int) -> dict | None:
        key = alarm_key(sc.site.id, obs.node, obs.param, rule.id)
        alarms = mem["alarms"]
        a = alarms.get(key)
        d = rule.debounce
        if obs.state == EXCLUDED:
            if a is not None:
                flag = obs.detail.get("flag", "?")
                a["excluded"][flag] = a["excluded"].get(flag, 0) + 1
            return None
        if obs.state == HOLD:
            return None
        if obs.state == BREACH:
            if a is None:
                a = alarms[key] = {"phase": "pending", "n": 0, "first_ts": obs.ts, "excluded": {},
                                   "notified": [], "escalated": False}
            if a["phase"] == "clearing":
                a["phase"], a["n"] = "raised", 0
            a["value"], a["limit"], a["detail"] = obs.value, obs.limit, obs.detail
            if a["phase"] == "raised":
                return None
            a["n"] += 1
            if a["n"] >= d.raise_n and obs.ts - a["first_ts"] >= d.raise_s * 1000:
                a.update(phase="raised", start_ts=a["first_ts"], raised_ts=obs.ts, raised_wall=wall_ms,
                         episode=f"{key}|{a['first_ts']}")
                return self._transition(sc, rule, obs, a, "raised")
            return None
        if a is None:
            return None
        if obs.state == WITHIN:
            if a["phase"] == "pending":
                del alarms[key]
            elif a["phase"] == "clearing":
                a.update(phase="raised", n=0)  # clean samples must be consecutive
            return None
        # OK
        if a["phase"] == "pending":
            del alarms[key]  # never raised: nothing to clear
            return None
        if a["phase"] == "raised":
            a.update(phase="clearing", n=0, clear_first_ts=obs.ts)
        a["n"] += 1
        if a["n"] >= d.clear_n and obs.ts - a["clear_first_ts"] >= d.clear_s * 1000:
            del alarms[key]
            return self._transition(sc, rule, obs, a, "cleared")
        return None

    def _transition(self, sc: SiteConfig, rule: Rule, obs: Obs, a: dict, event: str) -> dict:
        t = {"event": event, "site": sc.site.id, "node": obs.node, "param": obs.param, "rule": rule.id,
             "kind": rule.kind, "ts": obs.ts, "start_ts": a["start_ts"], "episode": a["episode"],
             "value": a["value"] if event == "raised" else obs.value,
             "limit": a["limit"] if a["limit"] is not None else obs.limit,
             "detail": a.get("detail") or {}, "excluded": dict(a["excluded"]),
             "notified": list(a["notified"])}
        t["message"] = (messages.raise_text(t, sc.site.name) if event == "raised"
                        else messages.clear_text(t, sc.site.name))
        if event == "raised":
            a["message"] = t["message"]
        return t

    def _notices(self, mem, sc: SiteConfig, t: dict) -> list[Notice]:
        if t["event"] == "raised":
            phones = []
            for role in sc.notify_roles:
                phones += [p for p in sc.roles.get(role, []) if p not in phones]
            a = mem["alarms"].get(alarm_key(t["site"], t["node"], t["param"], t["rule"]))
            if a is not None:
                a["notified"] = phones
            kind = "alarm"
        else:
            phones = t["notified"]  # the clear goes to whoever heard of the raise
            kind = "clear"
        item = messages.summary_item(t, sc.site.name, t["event"])
        return [Notice(id=f"{t['episode']}|{t['event']}|{p}", to=p, kind=kind,
                       key=f"{t['site']}|{t['node']}|{t['param']}|{t['rule']}", text=t["message"], item=item,
                       site=t["site"]) for p in phones]

    def _escalate(self, mem, now_ms: int) -> Output:
        out = Output()
        notices = []
        for key, a in mem["alarms"].items():
            if a["phase"] not in ("raised", "clearing") or a["escalated"]:
                continue
            sid = key.split("|", 1)[0]
            sc = self.cfg.sites.get(sid)
            if sc is None or sc.escalate_after_min is None or not sc.escalate_roles:
                continue
            if now_ms - a["raised_wall"] < sc.escalate_after_min * 60_000:
                continue
            a["escalated"] = True
            t = {"start_ts": a["start_ts"]}
            text = messages.escalation_text(t, a.get("message", ""), now_ms)
            for role in sc.escalate_roles:
                for p in sc.roles.get(role, []):
                    if p in a["notified"]:
                        continue
                    a["notified"].append(p)  # so the clear reaches them too
                    notices.append(Notice(id=f"{a['episode']}|escalated|{p}", to=p, kind="escalation",
                                          key=key, text=text, item=text[:40], site=sid))
        if notices:
            send, dropped = notify.route(mem["notify"], notices, now_ms, self.cfg.sms)
            out.notices += send
            out.dropped += dropped
        return out

    def active(self, mem: dict) -> list[dict]:
        """Raised alarms (including those waiting out their clear hysteresis)."""
        out = []
        for key, a in sorted(mem["alarms"].items()):
            if a["phase"] in ("raised", "clearing"):
                site, node, param, rule = key.split("|")
                out.append({"site": site, "node": node, "param": param, "rule": rule, **a})
        return out
