"""pattern-track install: the hook merged into Claude Code's settings, run as a user runs it."""

import glob
import json
import os
import pathlib
import stat
import subprocess

import pytest

from pattern_track.cli.installer import MATCHER, hook_command
from pattern_track.collector import Collector
from tests.conftest import PYTHON

#: What this interpreter's installation writes (tests run the CLI with the same interpreter).
COMMAND = hook_command()
OURS = {"type": "command", "command": COMMAND, "timeout": 10}

OTHERS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git status)"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}],
        "PostToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "prettier --write"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
    },
    "env": {"GREETING": "héllo"},
}


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def run(env, home, tmp_path):
    """Run pattern-track with HOME in tmp_path and the current directory in tmp_path/project."""
    project = tmp_path / "project"
    project.mkdir()

    def run(*args, cwd=project):
        return subprocess.run([PYTHON, "-m", "pattern_track", *args], capture_output=True, cwd=cwd, timeout=60,
                              env=dict(env, HOME=str(home)))
    return run


def user_file(home, doc=None, text=None, mode=0o644):
    path = home / ".claude" / "settings.json"
    if doc is not None or text is not None:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) if text is None else text, encoding="utf-8")
        path.chmod(mode)
    return path


def backups(path):
    return sorted(glob.glob(f"{path}.bak-*"))


def test_install_keeps_other_hooks_and_keys(run, home):
    """Other hooks, events and keys stay as they were, in order; our entry is added to PostToolUse."""
    path = user_file(home, OTHERS)
    original = path.read_bytes()
    out = run("install")
    assert out.returncode == 0, out.stderr
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert list(doc) == list(OTHERS) and list(doc["hooks"]) == list(OTHERS["hooks"])
    assert doc["hooks"]["PostToolUse"] == OTHERS["hooks"]["PostToolUse"] + [{"matcher": MATCHER, "hooks": [OURS]}]
    assert {k: v for k, v in doc.items() if k != "hooks"} == {k: v for k, v in OTHERS.items() if k != "hooks"}
    assert {k: v for k, v in doc["hooks"].items() if k != "PostToolUse"} == \
        {k: v for k, v in OTHERS["hooks"].items() if k != "PostToolUse"}
    assert os.path.isabs(COMMAND.split()[0].strip("'")) and COMMAND.endswith(" hook")
    assert [pathlib.Path(b).read_bytes() for b in backups(path)] == [original]
    assert out.stdout.decode().startswith(f"installed in {path}: PostToolUse {MATCHER} runs `{COMMAND}`")


def test_install_creates_the_file_and_its_directory(run, home):
    """With no settings file yet, install creates ~/.claude/settings.json (private) and makes no backup."""
    out = run("install", "--json")
    path = user_file(home)
    assert out.returncode == 0 and json.loads(out.stdout)["action"] == "installed"
    assert json.loads(path.read_text()) == {"hooks": {"PostToolUse": [{"matcher": MATCHER, "hooks": [OURS]}]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and backups(path) == []


def test_install_twice_changes_nothing(run, home):
    """A second install leaves the file byte for byte, makes no backup and says it is already installed."""
    path = user_file(home, OTHERS)
    run("install")
    first, saved = path.read_bytes(), backups(path)
    out = run("install")
    assert out.returncode == 0 and path.read_bytes() == first and backups(path) == saved
    assert out.stdout.decode() == f"already installed in {path}: `{COMMAND}`; nothing to change\n"


@pytest.mark.parametrize("text, says, args", [
    ('{"hooks": {', "is not valid JSON", ()),
    ('{"hooks": {', "is not valid JSON", ("--uninstall",)),
    ('{"hooks": {', "is not valid JSON", ("--dry-run",)),
    ("[1, 2]", "the top level is not an object", ()),
    ('{"hooks": []}', '"hooks" is not an object', ("--uninstall",)),
    ('{"hooks": {"PostToolUse": {"matcher": "Write"}}}', '"hooks.PostToolUse" is not a list', ()),
    ('{"hooks": {"PostToolUse": null}}', '"hooks.PostToolUse" is not a list', ()),
])
def test_unusable_settings_are_refused_and_left_untouched(run, home, text, says, args):
    """A file that is not JSON, or has the wrong shape: one line on stderr, exit 1, file and folder as they were."""
    path = user_file(home, text=text)
    out = run("install", *args)
    assert out.returncode == 1 and out.stdout == b""
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pattern-track: {path}") and says in lines[0], lines
    assert path.read_text() == text and os.listdir(path.parent) == ["settings.json"]


def test_uninstall_removes_only_ours(run, home):
    """uninstall takes our entry out and gives back the document it found; a second one changes nothing."""
    path = user_file(home, OTHERS)
    run("install")
    out = run("install", "--uninstall")
    assert out.returncode == 0 and out.stdout.decode().startswith(f"removed from {path}: `{COMMAND}`")
    assert json.loads(path.read_text(encoding="utf-8")) == OTHERS
    after, saved = path.read_bytes(), backups(path)
    again = run("install", "--uninstall")
    assert again.returncode == 0 and again.stdout.decode() == f"not installed in {path}; nothing to remove\n"
    assert path.read_bytes() == after and backups(path) == saved


def test_uninstall_keeps_a_group_shared_with_other_hooks(run, home):
    """Our hook inside a group that holds other hooks: only ours goes, the group stays."""
    shared = {"hooks": {"PostToolUse": [{"matcher": "Write", "hooks": [
        {"type": "command", "command": "fmt"}, {"type": "command", "command": "/x/bin/pattern-track hook"}]}]}}
    path = user_file(home, shared)
    assert run("install", "--uninstall").returncode == 0
    assert json.loads(path.read_text()) == {"hooks": {"PostToolUse": [
        {"matcher": "Write", "hooks": [{"type": "command", "command": "fmt"}]}]}}


@pytest.mark.parametrize("args", [("install", "--dry-run"), ("install", "--dry-run", "--uninstall")])
def test_dry_run_writes_nothing(run, home, args):
    """--dry-run prints the change as a diff and leaves the file (and its folder) as they were."""
    path = user_file(home, OTHERS)
    if "--uninstall" in args:
        run("install")
    before, listing = path.read_bytes(), sorted(os.listdir(path.parent))
    out = run(*args)
    text = out.stdout.decode()
    assert out.returncode == 0 and path.read_bytes() == before and sorted(os.listdir(path.parent)) == listing
    assert f"--- {path}\n+++ {path}\n" in text and text.endswith("dry run: nothing written\n")
    sign = "-" if "--uninstall" in args else "+"
    assert f'{sign}            "command": "{COMMAND}",' in text
    doc = json.loads(run(*args, "--json").stdout)
    assert doc["dry_run"] is True and doc["changed"] is True and doc["backup"] is None and doc["diff"].startswith("---")


def test_dry_run_creates_no_file(run, home):
    """--dry-run against a missing settings file creates neither the file nor its folder."""
    out = run("install", "--dry-run")
    assert out.returncode == 0 and "--- /dev/null" in out.stdout.decode()
    assert not (home / ".claude").exists()


def test_project_installs_under_the_current_directory(run, home, tmp_path):
    """--project writes .claude/settings.json under the current directory, not the user's file."""
    out = run("install", "--project")
    path = tmp_path / "project" / ".claude" / "settings.json"
    assert out.returncode == 0 and json.loads(path.read_text())["hooks"]["PostToolUse"][0]["hooks"] == [OURS]
    assert not user_file(home).exists()


def test_settings_names_any_file(run, tmp_path):
    """--settings PATH installs into that file, creating its folder."""
    path = tmp_path / "elsewhere" / "my.json"
    assert run("install", "--settings", str(path)).returncode == 0
    assert json.loads(path.read_text())["hooks"]["PostToolUse"][0]["hooks"] == [OURS]


def test_reinstall_from_another_venv_replaces_the_old_command(run, home):
    """An entry of ours from another installation is rewritten in place (keeping its timeout); copies go."""
    old = {"hooks": {"PostToolUse": [
        {"matcher": "Write|Edit|MultiEdit|NotebookEdit",
         "hooks": [{"type": "command", "command": "/old/venv/bin/pattern-track hook", "timeout": 30}]},
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo bash"}]},
        {"matcher": "Edit", "hooks": [{"type": "command", "command": "/usr/bin/python3 -m pattern_track hook"}]},
    ]}}
    path = user_file(home, old)
    out = run("install")
    assert out.returncode == 0
    assert out.stdout.decode().startswith(f"updated in {path}: `/old/venv/bin/pattern-track hook`, "
                                          f"`/usr/bin/python3 -m pattern_track hook` -> `{COMMAND}`")
    assert json.loads(path.read_text())["hooks"]["PostToolUse"] == [
        {"matcher": MATCHER, "hooks": [{"type": "command", "command": COMMAND, "timeout": 30}]},
        {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo bash"}]},
    ]


def test_mode_indentation_and_symlink_are_kept(run, home, tmp_path):
    """The rewritten file keeps its mode and its indentation; a symlinked settings file stays a symlink."""
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text(json.dumps(OTHERS, indent=4))
    real.chmod(0o600)
    link = user_file(home)
    link.parent.mkdir()
    link.symlink_to(real)
    assert run("install").returncode == 0
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert real.read_text().startswith('{\n    "model": "opus",')
    assert [stat.S_IMODE(os.stat(b).st_mode) for b in backups(real)] == [0o600]


def test_doctor_says_where_the_hook_is_installed(run, home, tmp_path):
    """After install, doctor names the settings file and the command; before, it says how to install."""
    with Collector() as collector:
        assert b"hook: not installed: run `pattern-track install`" in run("doctor", "--url", collector.url).stdout
        run("install")
        run("install", "--project")
        out = run("doctor", "--url", collector.url)
    text = out.stdout.decode()
    assert out.returncode == 0 and text.endswith("next: nothing: all is well\n"), text
    assert f"hook: installed in {user_file(home)}: `{COMMAND}`" in text
    assert f"hook: installed in {tmp_path / 'project' / '.claude' / 'settings.json'}: `{COMMAND}`" in text


def test_doctor_flags_a_hook_whose_program_is_gone(run, home):
    """A hook left by a deleted virtualenv is a problem, and the next step is to reinstall."""
    user_file(home, {"hooks": {"PostToolUse": [{"matcher": MATCHER, "hooks": [
        {"type": "command", "command": "/gone/venv/bin/pattern-track hook"}]}]}})
    with Collector() as collector:
        out = run("doctor", "--url", collector.url)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 1
    assert (f"hook: installed in {user_file(home)}: `/gone/venv/bin/pattern-track hook` "
            "(its program is missing)") in lines
    assert lines[-1] == "next: run `pattern-track install` to point the hook at this installation"


def test_each_install_keeps_one_backup_not_one_more(run, home):
    """install, uninstall, install: one settings.json.bak-* beside the file, the one before the last change."""
    path = user_file(home, OTHERS)
    for args in (("install",), ("install", "--uninstall"), ("install",)):
        before = path.read_bytes()
        out = run(*args)
        assert out.returncode == 0, out.stderr
        assert [pathlib.Path(b).read_bytes() for b in backups(path)] == [before]
        assert out.stdout.decode().splitlines()[-1] == f"backup of the previous file: {backups(path)[0]}"
