"""The config op (cmdchan.new_config) and its trial (cfgswap at boot, ended by node.py once connected): a new config is
written beside the running one and the node resets; the boot swaps it in with the old one kept and
checks it with its own validator (one that does not load: the old one at once); the node gets
trial_s to reach the broker with it, confirms it once connected, and otherwise resets into the
previous config by itself; a swap cut by a power loss at any step is completed at boot."""
import json
import os

from fakes import good_config
from cfgswap import begin, restore, trial
from test_fw_cmd import KEY, T0, _acks, _send, command

from compat import ticks_add, ticks_ms


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def read_text(p):
    with open(p) as f:
        return f.read()


def write_text(p, s):
    with open(p, "w") as f:
        f.write(s)


def _rig_with_file():
    from fakes import NodeRig
    cfg = good_config()
    cfg["key"] = KEY
    resets = []
    rig = NodeRig(cfg, {"reset": lambda: resets.append(1)})
    rig.resets = resets
    path = rig.dir + "/node.json"
    cfg = good_config()  # as written (the rig's copy is filled in by the validator)
    cfg["key"] = KEY
    write_text(path, json.dumps(cfg))
    rig.node._trial[0] = path
    return rig, path, cfg


def _boot(path, validator=True):
    """start.load as a boot runs it; validator=False: with config.py unimportable (a boot that
    loads the checked copy must not need it)."""
    import sys
    from start import load
    import config  # noqa: F401  (start.load drops config from sys.modules: other cases keep theirs)
    keep = {m: sys.modules[m] for m in ("config", "cfgcheck") if m in sys.modules}
    if not validator:
        sys.modules["config"] = None
    try:
        return load(path)
    finally:
        sys.modules.update(keep)


def _config_cmd(cid, cfg, trial_s=300):
    return command(cid, "config", exp=T0 + 600000, args=json.dumps({"config": cfg, "trial_s": trial_s}))


def test_a_good_config_is_swapped_in_the_old_one_kept_and_the_node_resets():
    rig, path, cfg = _rig_with_file()
    try:
        rig.tick()
        new = dict(cfg, poll_s=7)
        _send(rig, _config_cmd(5, new, 120))
        rig.tick()
        a = _acks(rig)[-1]
        assert a["ok"] is True and a["result"] == {"trial_s": 120}, a
        assert json.loads(read_text(path))["poll_s"] == 5 and json.loads(read_text(path + ".config-new"))["poll_s"] == 7
        assert read_text(path + ".config-trial") == "0120" and not exists(path + ".config-old")
        assert rig.resets == [1]  # after the ack
        # the next boot: swapped (checked by start.load, then a reset); the one after: on trial for
        # 120 s; the one after that, still unconfirmed: the old one is back
        assert _boot(path) == (None, None) and read_text(path + ".config-trial") == "0120"
        assert json.loads(read_text(path))["poll_s"] == 7 and json.loads(read_text(path + ".config-old"))["poll_s"] == 5
        assert not exists(path + ".config-new")
        got, err = _boot(path)
        assert err is None and got["poll_s"] == 7 and got["_trial"] == (path, 120)
        assert read_text(path + ".config-trial") == "1120"
        assert _boot(path) == (None, None)  # the old one back, checked again, and a reset
        assert json.loads(read_text(path))["poll_s"] == 5 and not exists(path + ".config-trial")
        got, err = _boot(path)
        assert err is None and got["poll_s"] == 5 and got["_trial"] == (path, 0)
    finally:
        rig.done()


def test_a_config_for_another_node_or_bad_args_are_refused_and_nothing_changes():
    rig, path, cfg = _rig_with_file()
    try:
        rig.tick()
        before = read_text(path)
        _send(rig, _config_cmd(6, dict(cfg, node="cod-2")))
        rig.tick()
        _send(rig, _config_cmd(7, cfg, trial_s=1))  # (one big command waits on flash at a time)
        rig.tick()
        a = _acks(rig)
        assert [x["ok"] for x in a] == [False, False], a
        assert "for demo-site/cod-2, not this node" in a[0]["err"] and "trial_s 10..3600" in a[1]["err"], a
        assert read_text(path) == before and not exists(path + ".config-new") and not exists(path + ".config-trial")
        assert rig.resets == []
    finally:
        rig.done()


def test_a_config_that_does_not_load_at_its_boot_brings_the_old_one_back_at_once():
    rig, path, cfg = _rig_with_file()
    try:
        rig.tick()
        bad = dict(cfg, poll_s=-1)
        bad["mqtt"] = {"host": "", "port": 99999}
        _send(rig, _config_cmd(5, bad))
        rig.tick()
        assert _acks(rig)[-1]["ok"] is True and rig.resets == [1]
        # the boot: checked, refused, the old one back and checked (this rig's never was), a reset
        assert _boot(path) == (None, None)
        got, err = _boot(path, validator=False)  # the next: the old one, from its checked copy
        assert err is None and got["poll_s"] == 5 and got["_trial"] == (path, 0)
        assert json.loads(read_text(path)) == cfg and not exists(path + ".config-trial")
    finally:
        rig.done()


def test_the_trial_ends_when_the_node_connects_or_resets_it_when_it_cannot():
    rig, path, cfg = _rig_with_file()
    try:
        write_text(path + ".config-trial", "1300")
        rig.node._trial[1] = ticks_add(ticks_ms(), 300000)
        rig.tick()  # connects: confirmed
        assert not exists(path + ".config-trial") and rig.node._trial[1] is None
        assert any("confirmed" in ln for ln in rig.lines)
        rig.mqtt.connected = False
        rig.mqtt.fail_connect = True
        rig.node._trial[1] = ticks_add(ticks_ms(), -1)  # a later trial whose time is up
        rig.reconnect()
        rig.mqtt.fail_connect = True
        rig.tick()
        assert rig.resets == [1]
    finally:
        rig.done()


def test_a_swap_cut_by_a_power_loss_is_completed_at_boot():
    from fakes import make_tmpdir
    d = make_tmpdir()
    path = d + "/node.json"
    write_text(path + ".config-old", '{"v":1}')
    write_text(path + ".config-new", '{"v":2}')
    write_text(path + ".config-trial", "060")  # cut after the first move: no node.json
    assert trial(path) == -60 and read_text(path) == '{"v":2}' and read_text(path + ".config-old") == '{"v":1}'
    assert read_text(path + ".config-trial") == "060"  # the trial begins only once a boot checked it
    assert trial(path) == -60 and read_text(path) == '{"v":2}' and read_text(path + ".config-old") == '{"v":1}'
    begin(path)
    assert read_text(path + ".config-trial") == "160"
    os.remove(path)
    assert trial(path) == 0 and read_text(path) == '{"v":1}'  # the old one, the trial over
    write_text(path + ".config-old", '{"v":1}')
    write_text(path + ".config-trial", "0")
    restore(path)
    assert read_text(path) == '{"v":1}' and not exists(path + ".config-trial")


def test_a_checked_config_is_kept_and_the_next_boot_loads_it_without_the_validator():
    from fakes import make_tmpdir
    path = make_tmpdir() + "/node.json"
    cfg = good_config()
    write_text(path, json.dumps(cfg))
    first, err = _boot(path)
    assert err is None and exists(path + ".checked")
    again, err = _boot(path, validator=False)
    assert err is None and again == first  # the same config, to the last float, without config.py
    # the file changed (one value): checked again, and a bad one refused as before
    write_text(path, json.dumps(dict(cfg, poll_s=-1)))
    got, err = _boot(path)
    assert got is None and "poll_s" in err
    write_text(path, json.dumps(cfg))
    assert _boot(path)[0] == first
    # a checked copy cut half way, or kept by another firmware version: checked again
    text = read_text(path + ".checked")
    write_text(path + ".checked", text[:len(text) // 2])
    assert _boot(path)[0] == first and read_text(path + ".checked") == text
    write_text(path + ".checked", "0" * 64 + text[64:])
    try:
        _boot(path, validator=False)
        raise AssertionError("a checked copy of another digest was used")
    except ImportError:
        pass


def test_the_checked_copy_of_profiles_with_every_status_kind_loads_as_checked():
    from fakes import make_tmpdir
    path = make_tmpdir() + "/node.json"
    cfg = good_config()
    t = cfg["analyzers"][0]["transport"]
    # code (int codes), ascii_flag (text codes), bits: each kind of status map
    cfg["analyzers"] = [{"name": "a%d" % i, "transport": t, "unit": i + 1, "timeout_ms": 500, "profile": p}
                        for i, p in enumerate(("cod_hach_cdab", "nh3n_xinruipeng", "tptn_thermo"))]
    write_text(path, json.dumps(cfg))
    first, err = _boot(path)
    assert err is None, err
    kinds = [a["status"]["kind"] for a in first["analyzers"]]
    assert kinds == ["code", "ascii_flag", "bits"], kinds
    again, err = _boot(path, validator=False)
    assert err is None and again is not None
    for a, b in zip(first["analyzers"], again["analyzers"]):
        assert a["status"]["map"] == b["status"]["map"] and [list(x) for x in a["status"]["bits"]] == \
            [list(x) for x in b["status"]["bits"]] and a["values"] == b["values"], (a["name"], a["status"], b["status"])
