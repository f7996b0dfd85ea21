"""`edgemon report daily` end to end against a real InfluxDB: a day of demo-like data (two nodes every
60 s with gaps, `aggregate` hour and day points, two alarms, a quarantine with two refused records)
-> the PDF's extracted text holds the values, verdicts, counts, alarms and signature counts; the PNG
is a real image."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from edgemon.contract import ContractError
from edgemon.dev.stack import ensure_installed
from edgemon.influx import InfluxV1Writer
from edgemon.keys import Verifier, signed_payload
from edgemon.lineproto import escape_string_field, line
from edgemon.quarantine import Quarantine
from edgemon.report.days import day_bounds, local_text, zone

pytestmark = pytest.mark.integration

SITE, DAY, TZ = "laixi-ent", date(2025, 11, 25), zone("Asia/Shanghai")
START, END = day_bounds(DAY, TZ)
MIN, HOUR = 60_000, 3_600_000
KEYS = {f"{SITE}/node01": bytes(range(32)), f"{SITE}/node02": bytes(range(32, 64))}
# node -> param -> (daily mean, hour mean); laixi-plant limits: COD <= 40, NH3-N <= 2, pH 6-9
NODES = {"node01": {"w01018": 35.2, "w21003": 2.6}, "node02": {"w01001": 7.3, "w00000": 12.5}}
NODE01_GAP = range(600, 631)  # 10:00-10:30 missing: one gap
NODE01_SHORT = range(200, 202)  # two records missing: no gap
NODE02_SILENT_FROM = 23 * 60  # nothing after 22:59: a gap to midnight
FLAGGED_HOUR = 14  # COD's 14:00 hour is flagged D


def record_minutes(node: str) -> list[int]:
    if node == "node01":
        return [m for m in range(1440) if m not in NODE01_GAP and m not in NODE01_SHORT]
    return list(range(NODE02_SILENT_FROM))


def points() -> list[str]:
    lines = []
    for node, params in NODES.items():
        for m in record_minutes(node):
            for param, mean in params.items():
                lines.append(line("reading", {"site": SITE, "node": node, "param": param},
                                  {"value": mean + (0.3 if m % 2 else -0.3), "flag": "N"}, START + m * MIN))
        for param, mean in params.items():
            for h in range(24):
                n = sum(h * 60 <= m < h * 60 + 60 for m in record_minutes(node))
                flag = "D" if (param, h) == ("w01018", FLAGGED_HOUR) else "N"
                fields = f'min={mean - 0.3},max={mean + 0.3},flag={escape_string_field(flag)},' \
                         f'valid={"true" if n >= 45 else "false"},n={n}i,count={n}i,weighted=false'
                if n:
                    fields = f"avg={mean}," + fields
                lines.append(f"aggregate,node={node},param={param},period=hour,site={SITE} {fields} "
                             f"{START + h * HOUR}")
            total = len(record_minutes(node))
            valid = "false" if param == "w01001" else "true"  # pH: too few valid hours that day
            n = total // 2 if param == "w01001" else total
            cou = ",cou=865.5" if param == "w00000" else ""
            lines.append(f"aggregate,node={node},param={param},period=day,site={SITE} avg={mean},min={mean - 0.3},"
                         f"max={mean + 0.3}{cou},flag=\"N\",valid={valid},n={n}i,count={total}i,weighted=false "
                         f"{START}")
    for ts, state, value, text in ((START + 8 * HOUR + 15 * MIN, "raised", 2.9, "【超标预警】莱西某企业总排口氨氮监测值2.9mg/L"),
                                   (START + 9 * HOUR + 30 * MIN, "cleared", 1.8, "【告警解除】莱西某企业总排口氨氮")):
        lines.append(line("alarm", {"site": SITE, "node": "node01", "param": "w21003", "rule": "instant"},
                          {"state": state, "value": value, "limit": 2.0, "message": text}, ts))
    lines.append(line("alarm", {"site": "other", "node": "node01", "param": "w21003", "rule": "instant"},
                      {"state": "raised", "value": 9.9, "limit": 2.0, "message": "另一站点"}, START + HOUR))
    return lines


def quarantine(path: Path) -> None:
    """Two data payloads the gateway's own Verifier refuses (one unsigned, one signed with the wrong
    key), and one refused record of the day before, which must not count."""
    q, verifier = Quarantine(path), Verifier(KEYS)

    def rec(ts: int) -> bytes:
        return json.dumps({"ts": ts, "seq": 7, "clk": "ntp", "readings": {"w01018": {"v": 20.0, "f": "N"}}},
                          separators=(",", ":")).encode()

    for payload in (rec(START + 3 * HOUR), signed_payload(rec(START + 4 * HOUR), KEYS[f"{SITE}/node02"]),
                    rec(START - 5 * MIN)):
        try:
            verifier.check(SITE, "node01", payload)
        except ContractError as exc:
            q.add(f"edge/v1/{SITE}/node01/data", payload, str(exc), received_ms=START + 5 * HOUR)
        else:
            pytest.fail("the verifier took a payload the test meant as refused")
    q.close()


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def has_line(text: str, *parts: str) -> bool:
    """A line of the extracted text holding every part (spacing ignored)."""
    return any(all(squash(p) in squash(ln) for p in parts) for ln in text.splitlines())


def test_daily_report_from_influxdb(stack, tmp_path):
    pdftotext = ensure_installed(("pdftotext",))["pdftotext"]
    db = stack.new_database()
    with InfluxV1Writer(stack.influx_url, db) as w:
        w.write(points())
    keys = tmp_path / "keys.toml"
    keys.write_text("[keys]\n" + "".join(f'"{k}" = "{v.hex()}"\n' for k, v in KEYS.items()))
    os.chmod(keys, 0o600)
    (tmp_path / "alarms.toml").write_text(f'[sites.{SITE}]\nname = "莱西某企业总排口"\nprofile = "laixi-plant"\n',
                                          encoding="utf-8")
    (tmp_path / "gateway.toml").write_text(
        f'[gateway]\nid = "gw"\nstate_dir = "state"\n[mqtt]\nhost = "127.0.0.1"\n'
        f'[influx]\nurl = "{stack.influx_url}"\ndatabase = "{db}"\n[trust]\nkeys_file = "keys.toml"\n'
        f'[sites.{SITE}]\npoll_s = 60\nnodes = ["node01", "node02"]\n[alarms]\nconfig = "alarms.toml"\n',
        encoding="utf-8")
    quarantine(tmp_path / "state" / "quarantine.jsonl")

    out = tmp_path / "reports"
    res = subprocess.run([sys.executable, "-m", "edgemon.cli", "report", "daily", "--config",
                          str(tmp_path / "gateway.toml"), "--site", SITE, "--date", DAY.isoformat(), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    pdf, png = out / f"{SITE}_{DAY.isoformat()}.pdf", out / f"{SITE}_{DAY.isoformat()}.png"
    assert res.stdout.split() == [str(pdf), str(png)]
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout

    assert has_line(text, "莱西某企业总排口", SITE) and "莱西市污水处理厂排放限值" in text
    # each parameter's daily value, unit, limit and verdict on its row
    assert has_line(text, "化学需氧量", "w01018", "node01", "35.2", "mg/L", "≤40", "达标")
    assert has_line(text, "氨氮", "w21003", "node01", "2.6", "mg/L", "≤2", "超标", "超过上限2")
    assert has_line(text, "pH值", "w01001", "node02", "7.3", "无量纲", "6～9", "无效", "日均值无效")
    assert f"有效值{len(record_minutes('node02')) // 2}个/共{len(record_minutes('node02'))}个" in squash(text)
    assert has_line(text, "污水流量", "w00000", "node02", "12.5", "L/s", "无限值", "865.5 m³")
    assert has_line(text, "结论", "达标1项", "超标1项", "无效1项", "无限值1项")

    # completeness per node, and the gaps with their times
    n1, n2 = len(record_minutes("node01")), len(record_minutes("node02"))
    assert has_line(text, "node01", "60 秒", f"{n1}/1440", f"{100 * n1 / 1440:.1f}%", "1 段")
    assert has_line(text, "node02", "60 秒", f"{n2}/1440", f"{100 * n2 / 1440:.1f}%", "1 段")
    before, after = START + (NODE01_GAP[0] - 1) * MIN, START + (NODE01_GAP[-1] + 1) * MIN
    assert has_line(text, "node01", local_text(before, TZ), local_text(after, TZ), f"{(after - before) / MIN:.1f} 分钟")
    last = START + (NODE02_SILENT_FROM - 1) * MIN
    assert has_line(text, "node02", local_text(last, TZ), "24:00:00")

    # signatures: every stored record verified, the two refused ones of the day counted by kind
    assert has_line(text, "签名要求：是", "node01、node02")
    assert has_line(text, f"接受的记录（签名已校验）：{n1 + n2} 条")
    assert has_line(text, "因签名被拒的记录：2 条", "缺少签名 1 条", "签名不符 1 条")

    # the day's alarms of this site only
    assert has_line(text, "08:15:00", "触发", "氨氮", "node01", "instant", "2.9", "2", "【超标预警】")
    assert has_line(text, "09:30:00", "解除", "氨氮", "1.8")
    assert "另一站点" not in text
    # the hourly charts' titles
    assert has_line(text, "化学需氧量", "node01", "日均35.2 mg/L 达标") and "逐时均值" in text

    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    assert width >= 1000 and height >= 600, (width, height)
    assert png.stat().st_size > 30_000
