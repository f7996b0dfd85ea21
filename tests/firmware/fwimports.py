"""What each firmware module imports, read from its source with ast (CPython only, nothing is run).

Counted as an import of module "x": `import x`, `from x import ...` (at any depth: the firmware
imports inside functions to keep code out of the heap), `__import__("x")`, `call_once("x", ...)`
(compat.call_once imports its first argument), and `__import__(m)` where m is the variable of a
`for m in ("x", "y", ...)` loop. Any other `__import__(...)` or `call_once(...)` whose module is not
a string we can read is reported as dynamic, so a test can refuse it instead of missing an edge."""
import ast
import os


def _const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _call_name(call):
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


class Imports:
    """imports: {module name: [(line, how), ...]}; dynamic: [(line, source text)]."""

    def __init__(self, path):
        self.path = path
        with open(path) as f:
            self.source = f.read()
        self.tree = ast.parse(self.source, path)
        self.imports = {}
        self.dynamic = []
        loops = {}  # for-loop variable -> the string constants it runs over
        for node in ast.walk(self.tree):
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name) \
                    and isinstance(node.iter, (ast.Tuple, ast.List)):
                names = [_const_str(e) for e in node.iter.elts]
                if names and all(names):
                    loops.setdefault(node.target.id, []).extend(names)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self._add(a.name.split(".")[0], node, "import")
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    self._add(node.module.split(".")[0], node, "from-import")
            elif isinstance(node, ast.Call) and _call_name(node) in ("__import__", "call_once") and node.args:
                how = _call_name(node)
                arg = node.args[0]
                name = _const_str(arg)
                if name is not None:
                    self._add(name, node, how)
                elif isinstance(arg, ast.Name) and arg.id in loops:
                    for n in loops[arg.id]:
                        self._add(n, node, how + " (loop)")
                else:
                    self.dynamic.append((node.lineno, ast.get_source_segment(self.source, node)))

    def _add(self, name, node, how):
        self.imports.setdefault(name, []).append((node.lineno, how))


def module_imports(path):
    return Imports(path)


def graph(paths):
    """{module: Imports} for the given source files, keyed by module name (file stem)."""
    return {os.path.basename(p)[:-3]: Imports(p) for p in paths}


def cycles(edges):
    """The import cycles of a graph {module: set of modules} (strongly connected components of more
    than one module, or a module importing itself), each as a sorted list."""
    index = {}
    low = {}
    stack = []
    on = set()
    out = []
    counter = [0]

    def visit(v):  # Tarjan; the graph is a few dozen nodes, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def closure(edges, roots):
    """Every module reachable from roots through edges (roots included)."""
    seen = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(edges.get(m, ()))
    return seen
