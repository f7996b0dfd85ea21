"""The firmware's import graph, read from the sources (CPython, ast; nothing is run): no cycles among
the device modules. A cycle makes load order and compat.call_once's unloading depend on who came
first (a startup module that imports back the module that called it keeps, or drops, that module
by accident)."""
import glob
import os

from fwimports import cycles, graph
from fwpaths import FIRMWARE

# compat.call_once(mod, fn) imports the module its caller names: those string arguments are the
# edges (fwimports counts them at each call site); romboot.py runs `main` (or boardmain) by name.
DYNAMIC_OK = {("compat", "__import__(mod)"), ("romboot", '__import__(os.getenv("EDGEMON_MAIN") or "main")')}


def device_graph():
    g = graph(sorted(glob.glob(os.path.join(FIRMWARE, "*.py"))))
    mods = set(g)
    return g, {m: {n for n in g[m].imports if n in mods} for m in g}


def test_the_graph_is_read():
    g, edges = device_graph()
    # the edges each kind of import makes: a plain import, a from-import inside a function,
    # call_once("x", ...), __import__("x"), and __import__ over a loop of names
    assert "reccodec" in edges["flashqueue"] and "blockplan" in edges["config"]
    assert "nodesetup" in edges["node"] and "pointer" in edges["node"]
    assert {"compat", "record", "analyzer", "node"} <= edges["start"]


def test_no_dynamic_import_the_graph_cannot_see():
    g, _ = device_graph()
    bad = [(m, line, src) for m in sorted(g) for line, src in g[m].dynamic if (m, src) not in DYNAMIC_OK]
    assert not bad, "imports whose module is not a string literal (the cycle check cannot follow them): %s" % bad


def test_no_import_cycles_among_device_modules():
    g, edges = device_graph()
    found = cycles(edges)
    lines = []
    for comp in found:
        for m in comp:
            for n in sorted(edges[m] & set(comp)):
                lines.append("  %s.py -> %s (line %s)" % (m, n, ", ".join(str(x[0]) for x in g[m].imports[n])))
    assert not found, "import cycles among firmware modules: %s\n%s" % (found, "\n".join(lines))


def test_the_cycle_check_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
