"""The board's own code path on a PC: boardmain.py (the ESP32's entry) runs hw_esp32.Esp32HW and
transport_uart.UartTransport under the MicroPython unix port, with hil_tests/board_emulation
standing in for the ESP32's machine, network and ntptime modules (README there: what it is not).
A real Mosquitto, and the pymodbus bus simulator as the serial device server behind "UART 1"."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "firmware"))

from test_main_cli import mosquitto  # noqa: E402,F401  (fixture)
from test_power_cut import KEY, _records  # noqa: E402
from test_virtual_board import _subscribe  # noqa: E402

EMULATION = os.path.join(HERE, "board_emulation")


def _board_config(tmp_path, mqtt_port, ssid="plant-wifi"):
    cfg = {"site": "plant", "node": "esp01", "poll_s": 0.5, "key": KEY, "state_dir": str(tmp_path / "state"),
           "watchdog_s": 5, "wifi": {"ssid": ssid, "password": "secret"}, "ntp": {"host": "ntp.example"},
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "timeout_ms": 2000},
           "analyzers": [{"name": "cod", "profile": "cod_generic", "unit": 1, "timeout_ms": 500,
                          "transport": {"kind": "rtu", "uart": 1, "baud": 9600, "de": 4}}]}
    p = tmp_path / "node.json"
    p.write_text(json.dumps(cfg))
    return p


def _run_board(tmp_path, cfg_path, bus_port, seconds, heap="128k"):
    # 128k: the emulation modules are .py compiled inside the heap, where a board's machine and
    # network are C; the board's heap figures are the ROMFS runs of `make bench` and test_virtual_board.
    from edgemon.dev.nodeproc import firmware_command
    log = tmp_path / "board.log"
    argv, env = firmware_command(heap, cfg_path, mode="romfs")
    env = dict(os.environ, **env, MICROPYPATH=EMULATION, EDGEMON_MAIN="boardmain", EDGEMON_BOARD_LOG=str(log),
               EDGEMON_UART1="127.0.0.1:%d" % bus_port, EDGEMON_WIFI_SSID="plant-wifi", EDGEMON_WIFI_JOIN_MS="300")
    # A config the board has not checked yet: that boot checks it, keeps the checked copy and
    # resets (machine.reset, code 4 here), as the board does; the measured run is the boot after.
    proc = subprocess.Popen(argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if proc.returncode == 4 and log.exists() and log.read_text().splitlines()[-1:] == ["reset"]:
        proc.communicate()
        log.unlink()
        proc = subprocess.Popen(argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(seconds)
    if proc.poll() is None:
        proc.terminate()  # our own child, by PID: the board runs until power is cut
    out = proc.communicate(timeout=10)[0].decode(errors="replace")
    events = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, out, events


def _bus():
    from edgemon.dev.bussim import BusSimulator
    bus = BusSimulator(framing="rtu")
    bus.add(1, "cod_generic")
    bus.set_value(1, "w01018", 35.2)
    return bus.start()


def test_board_path_joins_wifi_syncs_ntp_polls_over_the_uart_and_publishes_signed(tmp_path, mosquitto):  # noqa: F811
    bus = _bus()
    sub, got = _subscribe(mosquitto)
    try:
        code, out, events = _run_board(tmp_path, _board_config(tmp_path, mosquitto), bus.port, 6)
        time.sleep(0.3)
    finally:
        sub.loop_stop()
        sub.disconnect()
        bus.stop()
    assert code not in (3, 4) and "Traceback" not in out and "error" not in out, out[-1500:]
    # The hardware as hw_esp32/transport_uart set it up.
    assert "wlan active=1" in events and "wlan connect plant-wifi" in events, events[:10]
    assert "ntp settime ntp.example" in events
    assert "uart 1 baud=9600 bits=8 parity=None stop=1 timeout=0 rxbuf=512" in events
    assert "pin 4 out=1 value=0" in events and "wdt timeout=5000" in events
    writes = [e for e in events if e.startswith("uart write ")]
    assert len(writes) >= 5 and all(e.endswith(" de=1") for e in writes), writes[:5]  # DE high while sending
    # What reached the broker: signed records of the analyzer's value, seq contiguous, clk from NTP.
    data = [pl for t, pl in got if t == "edge/v1/plant/esp01/data"]
    recs = [json.loads(body) for pl in data for _, body in _records(pl)]
    assert len(recs) >= 5 and [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert all(r["readings"]["w01018"] == {"v": 35.2, "f": "N"} for r in recs), recs[:3]
    # Sampled before the first NTP sync (the network comes up after the first poll): "rtc"; after: "ntp".
    clks = [r["clk"] for r in recs]
    assert clks[-1] == "ntp" and clks == sorted(clks, key=("rtc", "ntp").index), clks
    status = [json.loads(pl[:pl.rfind(b',"sig":"')] + b"}") for t, pl in got if t.endswith("/status")]
    assert status and status[0]["state"] == "online" and status[0]["rssi"] == -61, status[:1]


def test_board_without_wifi_keeps_records_on_flash_and_replays_them_once_joined(tmp_path, mosquitto):  # noqa: F811
    bus = _bus()
    sub, got = _subscribe(mosquitto)
    try:
        code, out, events = _run_board(tmp_path, _board_config(tmp_path, mosquitto, ssid="wrong-ssid"), bus.port, 6)
        assert code not in (3, 4) and "Traceback" not in out, out[-1500:]
        joins = [e for e in events if e.startswith("wlan connect")]
        assert 1 <= len(joins) <= 3, joins  # retried with backoff (4 s, then longer), not in a tight loop
        assert not [t for t, _ in got if t.endswith("/data")]  # nothing could be sent
        queued = int(out.rsplit("queue=", 1)[1].split()[0]) if "queue=" in out else None
        code, out2, _ = _run_board(tmp_path, _board_config(tmp_path, mosquitto), bus.port, 5)
        time.sleep(0.3)
    finally:
        sub.loop_stop()
        sub.disconnect()
        bus.stop()
    assert code not in (3, 4) and "Traceback" not in out2, out2[-1500:]
    seqs = [s for t, pl in got if t.endswith("/data") for s, _ in _records(pl)]
    assert len(seqs) == len(set(seqs)) and sorted(seqs) == list(range(1, max(seqs) + 1)), seqs[:20]
    assert queued is None or max(seqs) > queued >= 8  # the offline run's records, then the new ones
