"""Put pattern_track's hook into a Claude Code ``settings.json``, or take it out (stdlib only).

``plan()`` computes the new text; ``apply()`` writes it only if it changed, atomically, after
a backup (one: an older backup of ours is removed once the new file is in place). Other
hooks, events and keys (and their order) are carried over as parsed. Our entry is known by
its command (``.../pattern-track hook``, ``... -m pattern_track hook``), so installing from
another virtualenv rewrites the old command in place; the first entry of ours keeps its
place and any key a user set on it (a longer ``timeout``); copies are removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
import time
from typing import Any, TypeVar

from ..errors import PatternTrackError

__all__ = ["EVENT", "MATCHER", "Change", "SettingsError", "apply", "find", "hook_command", "is_ours",
           "plan", "project_settings", "user_settings"]

EVENT = "PostToolUse"
#: The tools whose results the hook turns into pattern events.
MATCHER = "Write|Edit|MultiEdit|NotebookEdit"
#: Seconds Claude Code lets the hook run before killing it (it takes ~50 ms).
TIMEOUT_S = 10
#: A new settings file is private: it may later hold an ``env`` with an API key.
NEW_FILE_MODE = 0o600
_Shape = TypeVar("_Shape", dict, list)  # what a level of the settings document must be


class SettingsError(PatternTrackError):
    """The settings file cannot be read, parsed or written; it was left as it was."""


@dataclasses.dataclass(frozen=True)
class Change:
    """What installing ``command`` (None: uninstalling) does to one settings file.

    ``action`` is installed, updated or unchanged (install), removed or absent (uninstall);
    ``previous`` our commands found before; ``before``/``after`` the text (None: no file).
    """

    path: str
    action: str
    command: str | None
    previous: tuple[str, ...]
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.after != self.before


def user_settings() -> str:
    """``~/.claude/settings.json`` (``$HOME`` honoured): every project of this user."""
    return os.path.join(os.path.expanduser("~"), ".claude", "settings.json")


def project_settings(cwd: str | None = None) -> str:
    """``.claude/settings.json`` under ``cwd`` (default: the current directory)."""
    return os.path.join(os.path.abspath(cwd or os.getcwd()), ".claude", "settings.json")


def hook_command(executable: str | None = None) -> str:
    """This installation's hook command: the ``pattern-track`` beside the interpreter (a
    virtualenv's ``bin``), else the one on ``PATH``, else ``<python> -m pattern_track hook``."""
    executable = executable or sys.executable
    beside = os.path.join(os.path.dirname(executable), "pattern-track")
    script = beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else shutil.which("pattern-track")
    if script:
        return f"{shlex.quote(os.path.abspath(script))} hook"
    return f"{shlex.quote(executable)} -m pattern_track hook"


def is_ours(command: Any) -> bool:
    """True for a command that runs pattern_track's hook, from any installation."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: not something we wrote
        return False
    return len(words) >= 2 and words[-1] == "hook" and (
        os.path.basename(words[-2]) == "pattern-track" or words[-3:-1] == ["-m", "pattern_track"])


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as handle:  # newline="": bytes as they are
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError) as exc:
        raise SettingsError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _load(path: str, text: str | None) -> tuple[dict, list]:
    """The document and its ``hooks.PostToolUse`` list; refuse a shape we cannot merge into."""
    try:
        doc = json.loads(text) if text and text.strip() else {}  # an empty file: no settings yet
    except ValueError as exc:
        raise SettingsError(f"{path} is not valid JSON ({exc}); left untouched") from None
    doc = _shaped(path, "the top level", doc, dict)
    hooks = _shaped(path, '"hooks"', doc.get("hooks", {}), dict)
    return doc, _shaped(path, f'"hooks.{EVENT}"', hooks.get(EVENT, []), list)


def _shaped(path: str, where: str, value: Any, kind: type[_Shape]) -> _Shape:
    """``value``, if it is a ``kind`` (dict or list); else the refusal that names ``where``."""
    if not isinstance(value, kind):
        raise SettingsError(f"{path}: {where} is not {'an object' if kind is dict else 'a list'}; left untouched")
    return value


def _entries(groups: list) -> list[tuple[Any, list]]:
    """(group, its hooks list) for each group shaped as Claude Code expects; others are skipped."""
    return [(g, g["hooks"]) for g in groups if isinstance(g, dict) and isinstance(g.get("hooks"), list)]


def _ours(groups: list) -> list[str]:
    return [h["command"] for _, hooks in _entries(groups) for h in hooks
            if isinstance(h, dict) and is_ours(h.get("command"))]


def find(path: str) -> list[str]:
    """Our hook commands in the settings file at ``path`` ([] when it has none or is missing)."""
    return _ours(_load(path, _read(path))[1])


def _merge(groups: list, command: str | None) -> bool:
    """Remove our entries; with ``command``, keep the first (set to it) or add one. Changed?"""
    changed = found = False
    emptied = []
    for group, hooks in _entries(groups):
        kept = []
        for hook in hooks:
            if not (isinstance(hook, dict) and is_ours(hook.get("command"))):
                kept.append(hook)
            elif command is not None and not found:
                found = True
                if hook.get("type") != "command" or hook.get("command") != command:
                    hook.update(type="command", command=command)
                    changed = True
                kept.append(hook)
            else:
                changed = True
        if len(kept) != len(hooks):
            group["hooks"] = kept
            if not kept:
                emptied.append(group)
    groups[:] = [g for g in groups if not any(g is e for e in emptied)]
    if command is not None and not found:
        groups.append({"matcher": MATCHER, "hooks": [{"type": "command", "command": command, "timeout": TIMEOUT_S}]})
        changed = True
    return changed


def _indent(text: str | None) -> str | int:
    """The file's own indentation (a tab or a number of spaces); 2 for a new or one-line file."""
    for line in (text or "").splitlines()[1:]:
        body = line.lstrip(" \t")
        if body and body != line:
            space = line[:len(line) - len(body)]
            return "\t" if space.startswith("\t") else len(space)
    return 2


def plan(path: str, *, command: str | None) -> Change:
    """What installing ``command`` (None: uninstalling) would do to ``path``; writes nothing.

    Raises ``SettingsError`` if the file cannot be read, is not JSON, or its top level,
    ``hooks`` or ``hooks.PostToolUse`` has the wrong type."""
    before = _read(path)
    doc, groups = _load(path, before)
    previous = tuple(_ours(groups))
    if command is not None:
        doc.setdefault("hooks", {}).setdefault(EVENT, groups)
    changed = _merge(groups, command)
    if command is None and changed:  # leave no container that only our entry filled
        if not groups:
            del doc["hooks"][EVENT]
        if not doc["hooks"]:
            del doc["hooks"]
    after = json.dumps(doc, indent=_indent(before), ensure_ascii=False) + "\n" if changed else before
    if command is None:
        action = "removed" if changed else "absent"
    else:
        action = "unchanged" if not changed else "updated" if previous else "installed"
    return Change(path, action, command, previous, before, after)


def _backup(target: str, text: str, mode: int) -> str:
    """``settings.json.bak-<time>-<random>`` beside the file, as private as the file
    (``_prune_backups`` then removes the older ones)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    fd, name = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f"{os.path.basename(target)}.bak-{stamp}-")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(text)
    return name


def _prune_backups(target: str, keep: str) -> None:
    """Remove the backups of ``target`` that ``_backup`` made before ``keep``: each install
    that changes the file keeps one backup, not one more. Other files are left alone."""
    import re

    ours = re.compile(re.escape(os.path.basename(target)) + r"\.bak-\d{8}T\d{6}-[A-Za-z0-9_]+")
    directory = os.path.dirname(target)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if ours.fullmatch(name) and path != keep:
            with contextlib.suppress(OSError):
                os.unlink(path)


def apply(change: Change) -> str | None:
    """Write ``change.after`` if it differs, atomically, keeping the file's mode; return the
    backup's path (the only backup of ours left beside it). A symlink stays a symlink (its
    target is rewritten). Raises ``SettingsError`` (nothing written) if the file changed since
    ``plan()`` or cannot be written."""
    if not change.changed:
        return None
    target = os.path.realpath(change.path)
    directory = os.path.dirname(target)
    try:
        os.makedirs(directory, exist_ok=True)
        if _read(target) != change.before:
            raise SettingsError(f"{change.path} changed while pattern-track was editing it; "
                                "nothing written, run it again")
        mode = stat.S_IMODE(os.stat(target).st_mode) if change.before is not None else NEW_FILE_MODE
        backup = _backup(target, change.before, mode) if change.before is not None else None
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(change.after or "")
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if backup is not None:
            _prune_backups(target, backup)
    except OSError as exc:
        raise SettingsError(f"cannot write {change.path}: {exc.strerror or exc}") from None
    return backup
