"""The flat tuples the firmware indexes by named offsets (const() names, folded away on the device:
only CPython can read them, so these tests run here alone): each writer puts every field where its
reader's name says it is."""
import sys

from fwpaths import FIRMWARE

if FIRMWARE not in sys.path:
    sys.path.insert(0, FIRMWARE)

import analyzer  # noqa: E402
import flashqueue  # noqa: E402
import reccodec  # noqa: E402
import record  # noqa: E402


def test_an_analyzers_values_sit_at_analyzer_py_offsets():
    cfg = {"name": "a", "unit": 1, "timeout_ms": 100, "status": None, "values": [
        {"param": "w01018", "fc": 3, "addr": 0, "type": "float32", "order": "CDAB", "scale": 1, "offset": 0,
         "range": None},
        {"param": "w21003", "fc": 4, "addr": 10, "type": "int16", "order": "ABCD", "scale": 0.01, "offset": 2.5,
         "range": [1, 9]}]}
    a = analyzer.Analyzer(cfg, None)
    n = analyzer._V_N
    assert len(a.vals) == 2 * n
    v = a.vals[n:]  # the second value's entries
    assert v[analyzer._V_PARAM] == "w21003" and v[analyzer._V_FC] == 4 and v[analyzer._V_TYPE] == "int16"
    assert v[analyzer._V_ORDER] == "ABCD" and (v[analyzer._V_MUL], v[analyzer._V_DIV]) == (1, 100)
    assert v[analyzer._V_OFFSET] == 2.5 and (v[analyzer._V_LOW], v[analyzer._V_HIGH]) == (1, 9)
    assert a.vals[analyzer._V_ORDER] == "CDAB" and a.vals[analyzer._V_LOW] is None
    # cmdprobe.sample (the probe) reads the values by these numbers (a const() is not importable on the device)
    assert (analyzer._V_PARAM, analyzer._V_TYPE, analyzer._V_ORDER, analyzer._V_N) == (0, 2, 3, 9)


def test_record_reads_the_rows_where_reccodec_writes_them():
    names = ("_ROW_VALUE", "_ROW_FLAG", "_ROW_F32", "_ROW_N")
    assert [getattr(record, k) for k in names] == [getattr(reccodec, k) for k in names]
    st = reccodec.State()
    body = reccodec.encode(st, 1, 1000, "ntp", [1.5, None], ["N", None], [True, False])
    rows = [None] * (2 * reccodec._ROW_N)
    reccodec.decode(reccodec.State(), body, 2, rows)
    assert rows[reccodec._ROW_VALUE] == 1.5 and rows[reccodec._ROW_FLAG] == "N" and rows[reccodec._ROW_F32] is True
    assert rows[reccodec._ROW_N + reccodec._ROW_FLAG] is None  # not sampled


def test_the_replay_cursor_sits_at_the_rd_offsets(tmp_path):
    q = flashqueue.FlashQueue(str(tmp_path), 8192, 2048, params=["w01018"])
    for i in range(3):
        q.append(1000 + i, "ntp", ["w01018"], [float(i)], ["N"], [False])
    assert [r[0] for r in q.peek(2)] == [1, 2]
    rd = q._rd
    assert rd[flashqueue._RD_FIRST] == 1 and rd[flashqueue._RD_STATE].seq == 2
    assert rd[flashqueue._RD_SCHEMA] == ["w01018"] and rd[flashqueue._RD_OFF] > 0
