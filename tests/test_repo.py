"""The repository keeps its promises about itself: layout, imports, CI command, no prints."""

import ast
import os
import re

import pattern_track

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "pattern_track")
MODULES = sorted(f[:-3] for f in os.listdir(PKG) if f.endswith(".py"))

#: Each third-party library is imported by exactly one module of ours.
OWNERS = {"requests": {"transport"}, "urllib3": {"transport"}, "pybreaker": {"breaker"}, "diskcache": {"outbox"}}
#: Modules that may import nothing of ours but errors (stdlib edges used by the hook path).
HOOK_PATH = {"hook", "spool", "launcher", "cachedir", "config", "event", "errors"}


def imports(module):
    with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module:
                found.add("." + node.module.split(".")[0])
            elif node.level:
                found |= {"." + a.name for a in node.names}
            else:
                found.add(node.module.split(".")[0])
    return found


def test_readme_test_command_is_the_one_ci_runs():
    """CI runs exactly the README's second command."""
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = [line for line in f.read().splitlines() if line.startswith("python3 -m venv")]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert len(ci) == 1 and ci[0] in readme


def test_each_third_party_library_has_one_owner_module():
    """requests, pybreaker and diskcache are each wrapped at one module's edge."""
    for lib, owners in OWNERS.items():
        users = {m for m in MODULES if lib in imports(m)}
        assert users == owners, (lib, users)


def test_collector_imports_nothing_of_ours():
    """The reference collector is standard library only."""
    assert not any(name.startswith(".") for name in imports("collector"))


def test_hook_path_stays_light():
    """The hook's modules import only each other: no requests, diskcache or threads."""
    for module in HOOK_PATH:
        ours = {name.lstrip(".") for name in imports(module) if name.startswith(".")}
        assert ours <= HOOK_PATH, (module, ours - HOOK_PATH)


def test_library_never_prints():
    """Only the CLI and the collector may write to the terminal."""
    for module in MODULES:
        if module in ("cli", "collector", "__main__"):
            continue
        with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
            text = f.read()
        assert not re.search(r"\bprint\(|sys\.std(out|err)\.write", text), module


def test_public_surface_is_declared_and_sorted():
    """__all__ lists the public names, sorted, and each resolves."""
    assert pattern_track.__all__ == sorted(pattern_track.__all__)
    for name in pattern_track.__all__:
        assert getattr(pattern_track, name) is not None


def test_package_logger_has_a_null_handler():
    """Applications decide where logs go; the library adds only a NullHandler."""
    import logging

    handlers = logging.getLogger("pattern_track").handlers
    assert handlers and all(isinstance(h, logging.NullHandler) for h in handlers)
