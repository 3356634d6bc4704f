"""``pattern-track install``: put the hook into Claude Code's settings.json, or take it out,
and say what changed (installer.py edits the file; the conventions are main.py's)."""

from __future__ import annotations

import os

from .common import _emit

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse

__all__ = ["cmd_install"]


def cmd_install(args: argparse.Namespace) -> int:
    import difflib

    from . import installer

    path = args.settings or (installer.project_settings() if args.project else installer.user_settings())
    change = installer.plan(os.path.abspath(path), command=None if args.uninstall else installer.hook_command())
    backup = None if args.dry_run else installer.apply(change)
    doc = {"path": change.path, "action": change.action, "changed": change.changed, "dry_run": args.dry_run,
           "command": change.command, "previous": list(change.previous), "backup": backup}
    diff = "".join(difflib.unified_diff(
        (change.before or "").splitlines(keepends=True), (change.after or "").splitlines(keepends=True),
        fromfile=change.path if change.before is not None else "/dev/null", tofile=change.path))
    old = ", ".join(f"`{c}`" for c in change.previous)
    would = "would be " if args.dry_run else ""
    said = {"installed": f"{would}installed in {change.path}: PostToolUse {installer.MATCHER} runs `{change.command}`",
            "updated": f"{would}updated in {change.path}: {old} -> `{change.command}`",
            "unchanged": f"already installed in {change.path}: `{change.command}`; nothing to change",
            "removed": f"{would}removed from {change.path}: {old}",
            "absent": f"not installed in {change.path}; nothing to remove"}[change.action]
    lines = ([diff.rstrip("\n")] if args.dry_run and diff else []) + [said]
    if backup:
        lines.append(f"backup of the previous file: {backup}")
    if args.dry_run:
        doc["diff"] = diff
        lines.append("dry run: nothing written")
    _emit(args, doc, lines)
    return 0
