"""The installer's small decisions: which command to write, and which entries are ours."""

import os
import pathlib
import stat

import pytest

from pattern_track.cli import installer


def script(directory, executable=True):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pattern-track"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_command_uses_the_script_beside_the_interpreter(tmp_path, monkeypatch):
    """A virtualenv's own bin/pattern-track wins over one on PATH."""
    beside = script(tmp_path / "venv" / "bin")
    script(tmp_path / "other")
    monkeypatch.setenv("PATH", str(tmp_path / "other"))
    assert installer.hook_command(str(tmp_path / "venv" / "bin" / "python")) == f"{beside} hook"


def test_command_falls_back_to_path_then_to_python_m(tmp_path, monkeypatch):
    """No executable script beside the interpreter: the one on PATH, else `python -m pattern_track hook`."""
    script(tmp_path / "venv" / "bin", executable=False)
    python = str(tmp_path / "venv" / "bin" / "python")
    on_path = script(tmp_path / "other")
    monkeypatch.setenv("PATH", str(tmp_path / "other"))
    assert installer.hook_command(python) == f"{on_path} hook"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert installer.hook_command(python) == f"{python} -m pattern_track hook"


def test_command_quotes_a_path_with_spaces(tmp_path, monkeypatch):
    """A path with a space is shell-quoted, and still recognised as ours."""
    beside = script(tmp_path / "my venv" / "bin")
    monkeypatch.setenv("PATH", "")
    command = installer.hook_command(str(tmp_path / "my venv" / "bin" / "python"))
    assert command == f"'{beside}' hook" and installer.is_ours(command)


@pytest.mark.parametrize("command, ours", [
    ("pattern-track hook", True),
    ("/home/me/.venvs/pt/bin/pattern-track hook", True),
    ("'/home/me/my venv/bin/pattern-track' hook", True),
    ("/usr/bin/python3 -m pattern_track hook", True),
    ("pattern-track hook ", True),
    ("pattern-track drain", False),
    ("my-pattern-track-wrapper hook", False),
    ("echo pattern-track", False),
    ("'unbalanced pattern-track hook", False),
    (None, False),
    (["pattern-track", "hook"], False),
])
def test_is_ours(command, ours):
    """Our entry is known by its command, from whichever installation wrote it."""
    assert installer.is_ours(command) is ours


def test_plan_writes_nothing_and_apply_refuses_a_file_changed_meanwhile(tmp_path):
    """plan() only reads; apply() will not overwrite a file someone changed after the plan."""
    path = tmp_path / "settings.json"
    path.write_text("{}")
    change = installer.plan(str(path), command="/x/pattern-track hook")
    assert change.action == "installed" and path.read_text() == "{}"
    path.write_text('{"model": "opus"}')
    with pytest.raises(installer.SettingsError, match="changed while"):
        installer.apply(change)
    assert path.read_text() == '{"model": "opus"}' and os.listdir(tmp_path) == ["settings.json"]


def test_an_empty_file_counts_as_no_settings(tmp_path):
    """A zero-byte settings file (a fresh `touch`) is treated as {}, not refused."""
    path = tmp_path / "settings.json"
    path.write_text("")
    path.chmod(0o640)
    installer.apply(installer.plan(str(path), command="/x/pattern-track hook"))
    assert '"command": "/x/pattern-track hook"' in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_each_change_keeps_one_backup_of_the_file_before_it(tmp_path):
    """Install, update, uninstall: after each, one backup of ours (the file as it was just
    before), never one more; backups someone else made beside it stay."""
    import glob
    import json

    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}')
    (tmp_path / "settings.json.bak").write_text("mine")
    (tmp_path / "settings.json.bak-old").write_text("mine too")
    for command in ("/a/pattern-track hook", "/b/pattern-track hook", None):
        before = path.read_text()
        backup = installer.apply(installer.plan(str(path), command=command))
        ours = glob.glob(f"{path}.bak-*T*-*")
        assert ours == [backup] and pathlib.Path(backup).read_text() == before
    assert json.loads(path.read_text()) == {"model": "opus"}
    assert (tmp_path / "settings.json.bak").read_text() == "mine"
    assert (tmp_path / "settings.json.bak-old").read_text() == "mine too"
    assert installer.apply(installer.plan(str(path), command=None)) is None  # unchanged: no backup touched
    assert glob.glob(f"{path}.bak-*T*-*") == [backup]
