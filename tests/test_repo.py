"""The repository keeps its promises about itself: layout, imports, CI command, no prints."""

import ast
import os
import re
import sys

import pattern_track

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "pattern_track")
#: Every module of the package, subpackages included, as "tracker" or "collector/store".
MODULES = sorted(os.path.relpath(os.path.join(d, f), PKG)[:-3].replace(os.sep, "/")
                 for d, _, files in os.walk(PKG) for f in files if f.endswith(".py"))
COLLECTOR = [m for m in MODULES if m.startswith("collector/")]

#: Each third-party library is imported by exactly one module of ours.
OWNERS = {"requests": {"delivery/transport"}, "urllib3": {"delivery/transport"}, "pybreaker": {"delivery/breaker"},
          "diskcache": {"store/diskstore"}}
#: Modules that may import nothing of ours but errors (stdlib edges used by the hook path).
HOOK_PATH = {"cli/hook", "cli/payload", "store/__init__", "store/spool", "store/cachedir", "store/services",
             "process/__init__", "process/launcher", "config/__init__", "config/values", "config/checks", "config/env",
             "config/options", "event", "codec", "errors", "logs"}


def parse(module):
    with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
        return ast.parse(f.read())


def imports(module):
    tree = parse(module)
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


#: The public surface, which mypy checks with its strict flags.
STRICT_MODULES = {"pattern_track", "pattern_track.codec", "pattern_track.config.*", "pattern_track.errors",
                  "pattern_track.event", "pattern_track.testing", "pattern_track.tracker", "pattern_track.tracking.*"}


def test_ci_runs_ruff_and_mypy_as_pyproject_configures_them():
    """pyproject.toml configures mypy (strict on the public surface) and ruff; .ci/run runs
    both with pinned versions, each command on its own line (set -e ignores a failure
    inside an && list)."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    assert all(f"\n{table}\n" in text for table in ("[tool.mypy]", "[tool.ruff]", "[tool.ruff.lint]"))
    try:
        import tomllib
    except ImportError:  # Python 3.10: the tables' presence is what can be read without a parser
        pass
    else:
        tool = tomllib.loads(text)["tool"]
        assert tool["mypy"]["files"] == ["pattern_track"] and tool["ruff"]["lint"]["select"]
        overrides = tool["mypy"]["overrides"]
        # mypy's `strict` is global-only: in an override it would turn on for every module.
        assert not any("strict" in o for o in overrides)
        strict = [o for o in overrides if o.get("disallow_untyped_defs") and o.get("warn_return_any")]
        assert strict and set(strict[0]["module"]) >= STRICT_MODULES, strict
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        commands = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    assert ".venv/bin/ruff check pattern_track tests" in commands and ".venv/bin/mypy" in commands
    install = next(c for c in commands if "pip install" in c and "mypy" in c)
    assert all(re.search(rf"(^| ){name}==\S+", install) for name in ("mypy", "ruff", "types-requests")), install
    readme = next(i for i, c in enumerate(commands) if c.startswith("python3 -m venv"))
    assert readme < commands.index(install) < commands.index(".venv/bin/mypy")


def test_each_third_party_library_has_one_owner_module():
    """requests, pybreaker and diskcache are each wrapped at one module's edge."""
    for lib, owners in OWNERS.items():
        users = {m for m in MODULES if lib in imports(m)}
        assert users == owners, (lib, users)


def qualified_imports(module):
    """The full names a module imports, relative imports resolved ("collector/store" -> ...)."""
    package = ["pattern_track", *module.split("/")[:-1]]
    found = set()
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found |= {base} if node.module else {f"{base}.{a.name}" for a in node.names}
    return found


def test_collector_imports_nothing_of_ours():
    """Each module of the collector subpackage imports only the standard library and its siblings."""
    assert {"collector/__init__", "collector/__main__", "collector/server"} <= set(COLLECTOR)
    for module in COLLECTOR:
        for name in qualified_imports(module):
            if name.split(".")[0] == "pattern_track":
                assert name.startswith("pattern_track.collector."), (module, name)
            else:
                assert name.split(".")[0] in sys.stdlib_module_names, (module, name)


def test_collector_public_surface_is_declared_and_sorted():
    """pattern_track.collector exports Collector, DEFAULT_PORT, FAULT_MODES and main, sorted."""
    import pattern_track.collector as collector

    assert collector.__all__ == sorted(collector.__all__)
    assert set(collector.__all__) >= {"Collector", "DEFAULT_PORT", "FAULT_MODES", "main"}
    for name in collector.__all__:
        assert getattr(collector, name) is not None


def test_hook_path_stays_light():
    """The hook's modules import only each other: no requests, diskcache or threads."""
    for module in HOOK_PATH:
        # The package root (__init__) is lazy: its names load on first use, not on import.
        ours = {_module_of(name) for name in qualified_imports(module) if name.startswith("pattern_track")}
        ours -= {"__init__"}
        if module == "cli/hook":
            ours -= {"delivery/direct"}  # only when no disk can keep the events: then it sends them now
        assert ours <= HOOK_PATH, (module, ours - HOOK_PATH)


def _module_of(name):
    """"pattern_track.store.spool.Spool" -> "store/spool"; a package -> "<package>/__init__"."""
    parts = name.split(".")[1:]
    while parts:
        path = "/".join(parts)
        if path in MODULES:
            return path
        if path + "/__init__" in MODULES:
            return path + "/__init__"
        parts = parts[:-1]
    return "__init__"


def test_library_never_prints():
    """Only the CLI and the collector subpackage may write to the terminal."""
    for module in MODULES:
        if (module.startswith("cli/") and module != "cli/hook") or module == "__main__" or module in COLLECTOR:
            continue
        with open(os.path.join(PKG, module + ".py"), encoding="utf-8") as f:
            text = f.read()
        assert not re.search(r"\bprint\(|sys\.std(out|err)\.write", text), module


def test_public_surface_is_declared_and_sorted():
    """__all__ lists the public names, sorted, and each resolves."""
    assert pattern_track.__all__ == sorted(pattern_track.__all__)
    for name in pattern_track.__all__:
        assert getattr(pattern_track, name) is not None


def test_package_logger_has_a_null_handler_and_nothing_reaches_stderr():
    """Applications decide where logs go: the library adds only a NullHandler (when it first
    logs; the hook path never imports logging), and a warning never reaches stderr."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import pattern_track.cli.main, pattern_track.cli.hook\n"
        "assert 'logging' not in sys.modules, 'the hook path imported logging'\n"
        "from pattern_track import Tracker\n"
        # handoff=False: no detached drainer may outlive the script and write into the temp
        # directory while it is being removed (a flake seen once).
        "n = Tracker('http://127.0.0.1:9', cache_dir=sys.argv[1] + '-net', linger_s=0.0, connect_timeout_s=0.2,"
        " handoff=False)\n"
        "n.track('pattern_created', pattern_id='p', pattern_data={'c': 1})\n"
        "n.flush(10)  # first log line: the network parts' 'service unhealthy (refused ...)'\n"
        "t = Tracker('http://127.0.0.1:9', cache_dir=sys.argv[1], handoff=False)\n"
        "assert t.track('not an event type', pattern_id='p') is None  # logs a warning\n"
        "import logging\n"
        "handlers = logging.getLogger('pattern_track').handlers\n"
        "assert handlers and all(isinstance(h, logging.NullHandler) for h in handlers), handlers\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run([sys.executable, "-c", code, cache + "/c"], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT), timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr


README_MAX_LINES = 230
#: ``[text](target)`` and ``[label]: target`` links, outside code.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|^\s{0,3}\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)


def _documents():
    """README.md, docs/*.md and the examples' READMEs."""
    docs = os.path.join(ROOT, "docs")
    names = sorted(n for n in os.listdir(docs) if n.endswith(".md")) if os.path.isdir(docs) else []
    examples = sorted(os.path.join(d, "README.md") for d, _, files in os.walk(os.path.join(ROOT, "examples"))
                      if "README.md" in files)
    return [os.path.join(ROOT, "README.md")] + [os.path.join(docs, n) for n in names] + examples


def test_readme_fits_on_a_few_screens():
    """The README stays short; the design, guarantees and figures live in docs/."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_every_relative_link_in_the_docs_resolves_in_the_repository():
    """Each relative link of README.md, docs/*.md and examples/*/README.md names a file or
    folder of this repository."""
    documents = _documents()
    assert len(documents) > 1, "docs/ holds no .md file"
    broken = []
    for path in documents:
        with open(path, encoding="utf-8") as f:
            text = _CODE.sub("", f.read())
        for match in _LINK.finditer(text):
            target = (match.group(1) or match.group(2)).split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # an anchor in the same page, or a URL (https:, mailto:)
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            inside = os.path.commonpath([resolved, ROOT]) == ROOT
            if not (inside and os.path.exists(resolved)):
                broken.append(f"{os.path.relpath(path, ROOT)}: {target}")
    assert not broken, broken


def test_configuration_doc_names_every_option():
    """docs/configuration.md has a row for every Config option (and so every variable)."""
    from pattern_track import config

    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as f:
        text = f.read()
    missing = [name for name in config.fields() if f"`{name}`" not in text]
    missing += [var for var in config.LEGACY_ENV if f"`{var}`" not in text]
    assert not missing, missing


def test_help_of_tracker_shows_the_public_api_only():
    """help(Tracker): no mixins or inherited sections, every public method documented, and
    force_health_check shown as the alias of check_health it is (one line, no second doc)."""
    import pydoc

    from pattern_track import Tracker

    assert Tracker.__mro__ == (Tracker, object)
    public = [name for name in dir(Tracker) if not name.startswith("_")]
    assert {"track", "flush", "close", "stats", "check_health", "force_health_check"} <= set(public)
    assert Tracker.force_health_check is Tracker.check_health
    assert "force_health_check()" in Tracker.check_health.__doc__
    for name in [*public, "__init__", "__enter__", "__exit__"]:
        doc = getattr(Tracker, name).__doc__ or ""
        assert len(doc.split()) >= 8, f"Tracker.{name} needs a docstring (shapes, units, errors)"
    text = pydoc.render_doc(Tracker, renderer=pydoc.plaintext)
    assert "inherited from" not in text and "Method resolution order" not in text
    assert "force_health_check = check_health(self: 'Tracker')" in text  # an alias: one line, no doc
    assert text.count("Ask the service now") == 1
