"""The modules of fastnn/ import one another in one direction: the graph of their imports, at module
level and inside functions alike (a deferred import is a circle all the same), has no cycle."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fastnn")


def package_modules():
    """{module name: path} of fastnn/*.py ("fastnn" for __init__.py)."""
    out = {}
    for f in sorted(os.listdir(PKG)):
        if f.endswith(".py"):
            out["fastnn" if f == "__init__.py" else "fastnn." + f[:-3]] = os.path.join(PKG, f)
    return out


def import_graph():
    """{module: set of the package's modules it imports anywhere in its source}."""
    modules = package_modules()
    compiled = {"fastnn." + f[:-4] for f in os.listdir(PKG) if f.endswith(".pyx")}  # fastnn._core: no imports
    graph = {}
    for name, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative to the package: every module here sits at its top level
                    base = "fastnn" + ("." + node.module if node.module else "")
                else:
                    base = node.module or ""
                for a in node.names:  # `from . import x` imports module x; `from .m import f` module m
                    sub = f"{base}.{a.name}"
                    targets.add(sub if sub in modules or sub in compiled else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph):
    """A list of modules [a, b, ..., a] forming a cycle, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_the_graph_sees_every_kind_of_import():
    g = import_graph()
    assert "fastnn.layers" in g["fastnn.models"]        # from .layers import Layer
    assert "fastnn._format" in g["fastnn.models"]       # from . import _core, _format
    assert "fastnn.benchmark" in g["fastnn.cli"]        # inside a function
    assert "fastnn" in g["fastnn.sklearn"]              # import fastnn as _fnn
    assert "fastnn.models" in g["fastnn"]
    assert "fastnn" not in g["fastnn.callbacks"]      # `from . import metrics` is metrics, not the package
    assert "fastnn" not in g["fastnn._validate"]      # `from . import _core` is the compiled module


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
