"""The package layout is the architecture: no import cycle, imports point down, small modules.

Imports are read with ``ast`` from the source, relative ones resolved and imports inside
functions included (a lazy import is still a dependency), so the rules hold for every
path a process can take, not only for what one run imports. Imports under
``if TYPE_CHECKING:`` never run: they count for the layers, not for cycles.
"""

import ast
import os

# Every module as "tracker" or "store/outbox" (a package's own module is "store/__init__"),
# and the module a dotted name lives in: one definition, test_repo.py's.
from tests.test_repo import MODULES, PKG, _module_of

#: The layers, lowest first: a module imports its own layer or lower ones, never higher.
#: Keys are a top-level module ("event") or a subpackage ("store/"); the collector is a
#: standalone reference service that imports nothing of ours (test_repo.py checks that).
LAYERS = [
    # values every layer uses: errors, log helpers, clocks, the wire event and its codec
    {"errors", "logs", "clock", "codec", "event", "collector/"},
    {"store/"},  # the durable store, one per service (journal, spool, outbox)
    {"config/"},  # options; resolves its store's paths through store/
    {"delivery/"},  # to the service, and what its answers mean
    {"process/"},  # exit, fork, the detached drainer
    {"tracker", "tracking/", "testing", "__init__"},  # the facade
    {"cli/", "__main__"},  # the command line: imported by nothing but itself and __main__
]

#: Upward imports allowed, each with its reason (none today).
UPWARD: dict = {}

#: Modules that may be longer than MAX_LINES (none today).
LONG_ALLOWED: set = set()
MAX_LINES = 260
MAX_TOP_LEVEL = 12


def _imports(module, *, typing_too):
    """The modules of ours that ``module`` imports, by name as in MODULES (with
    ``typing_too``, those imported for type checkers only as well)."""
    with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = ["pattern_track", *module.split("/")[:-1]]
    names = set()
    for node in _nodes(tree, typing_too):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names |= {f"{base}.{a.name}" for a in node.names}
    found = {_module_of(name) for name in names if name.split(".")[0] == "pattern_track"}
    return found - {module}


def _nodes(tree, typing_too):
    """Every node of ``tree``; without ``typing_too``, none under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if not typing_too and isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


#: What each module imports, type checkers' imports included (for the layers) ...
GRAPH = {module: _imports(module, typing_too=True) for module in MODULES}
#: ... and what it imports when it runs (for cycles).
RUNTIME = {module: _imports(module, typing_too=False) for module in MODULES}


def _layer(module):
    top = module.split("/")[0]
    for level, members in enumerate(LAYERS):
        if module in members or (top + "/" in members and "/" in module):
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _cycle():
    """One import cycle as ["a", "b", "a"], or None."""
    done, path = set(), []

    def visit(module):
        if module in path:
            return [*path[path.index(module):], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(RUNTIME[module]):
            found = visit(target)
            if found:
                return found
        path.pop()
        done.add(module)
        return None

    for module in MODULES:
        found = visit(module)
        if found:
            return found
    return None


def test_the_graph_sees_every_kind_of_import():
    """Relative, absolute and function-level imports are all read (the checks below rely on it)."""
    assert "store/cachedir" in RUNTIME["config/values"]  # relative, two dots
    assert "store/outbox" in RUNTIME["store/inventory"]  # inside a function
    assert "cli/main" in RUNTIME["__main__"]
    assert "config/options" in GRAPH["config/__init__"] - RUNTIME["config/__init__"]  # for type checkers only


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_point_down():
    """store imports no delivery, process or cli; delivery and process no cli; nothing but
    cli and __main__ imports cli; the facade may import everything below it."""
    wrong = sorted(f"{module} -> {target}" for module in MODULES for target in GRAPH[module]
                   if _layer(target) > _layer(module) and (module, target) not in UPWARD)
    assert not wrong, "imports pointing up a layer:\n" + "\n".join(wrong)


def test_allowed_upward_imports_are_still_needed():
    """An exception that the code no longer needs is taken out of UPWARD."""
    for module, target in UPWARD:
        assert target in GRAPH.get(module, set()), (module, target)


def test_the_command_line_is_imported_by_itself_only():
    for module in MODULES:
        if module.startswith("cli/") or module == "__main__":
            continue
        assert not {t for t in GRAPH[module] if t.startswith("cli/")}, module


def test_no_module_is_too_long():
    """No module over MAX_LINES lines, but the allowed ones (to be split later)."""
    long = {}
    for module in MODULES:
        with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
            lines = len(f.read().splitlines())
        if lines > MAX_LINES and module not in LONG_ALLOWED:
            long[module] = lines
    assert not long, long
    assert set(MODULES) >= LONG_ALLOWED, LONG_ALLOWED - set(MODULES)


def test_few_modules_at_the_top_level():
    top = [m for m in MODULES if "/" not in m]
    assert len(top) <= MAX_TOP_LEVEL, top
