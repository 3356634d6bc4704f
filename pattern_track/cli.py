"""``pattern-track``: the command line (hook, install, drain, sync, stats, cleanup, dead-letter, doctor, serve).

Errors are one clear line on stderr and a non-zero exit, except in ``hook``, which always
exits 0 and prints nothing (the hook host's rules). Heavy imports happen inside each
command so ``hook`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import argparse

__all__ = ["main"]

HOOK_HELP = """\
usage: pattern-track hook [-h]

Claude Code hook: turns one PostToolUse payload (Write, Edit, MultiEdit, NotebookEdit)
into pattern events, writes them to the spool under the cache directory and starts a
background drainer. It reads stdin to EOF, prints nothing and always exits 0.

Claude Code runs it with one hook JSON payload on stdin; install it with
`pattern-track install` (check it with `pattern-track doctor`). It is not meant to be
run by hand.

exit status:
  0    always when run with a payload on stdin (bad input, full disk and crashes included)
  2    stdin is a terminal: there is no payload to read
"""


def _config(args: "argparse.Namespace") -> Any:
    from .config import Config

    overrides = {}
    if getattr(args, "url", None):
        overrides["base_url"] = args.url
    if getattr(args, "cache_dir", None):
        overrides["cache_dir"] = args.cache_dir
    return Config.from_env(**overrides)


def _open(config: Any, *, network: bool) -> Any:
    """Core, dispatcher and drainer on this thread (no background threads)."""
    from .clock import Clock
    from .core import Core, Counters
    from .dispatcher import Dispatcher
    from .drainer import Drainer

    core = Core(config, Clock(), Counters())
    core.start(network=network)
    if core.outbox is None:
        raise SystemExit(f"pattern-track: outbox unavailable: {core.outbox_error}")
    dispatcher = Dispatcher(core)
    return core, dispatcher, Drainer(core, dispatcher)


def _emit(args: "argparse.Namespace", doc: Any, lines: Sequence[str]) -> None:
    """``doc`` as JSON with ``--json``, else the human ``lines``."""
    print(json.dumps(doc, indent=2, default=str) if args.json else "\n".join(lines))


def cmd_hook(args: "argparse.Namespace") -> int:
    return _hook([])  # main() takes `hook` before argparse; this keeps the parser honest


def cmd_install(args: "argparse.Namespace") -> int:
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


def cmd_drain(args: "argparse.Namespace") -> int:
    from .launcher import drainer_lock, set_resume_after

    config = _config(args)
    from .cachedir import prepare_directory

    cache_dir = prepare_directory(config.resolved_cache_dir)
    lock = drainer_lock(cache_dir)
    if lock is None:
        return 0  # another drainer is at work
    try:
        core, _, drainer = _open(config, network=True)
        done = drainer.run_until_idle(idle_s=args.idle, max_s=args.max)
        if not done:
            wait = core.breaker.seconds_until_probe() if core.breaker else 0.0
            set_resume_after(cache_dir, time.time() + max(wait, 5.0))
        core.outbox.close()
        return 0 if done else 1
    finally:
        os.close(lock)


def cmd_sync(args: "argparse.Namespace") -> int:
    core, _, drainer = _open(_config(args), network=True)
    tty = sys.stderr.isatty()
    drainer.ingest()
    total = core.outbox.pending()
    if not core.health.check():
        print(f"pattern-track: service unhealthy at {core.config.base_url} "
              f"({core.health.snapshot()['reason']}); {total} events wait", file=sys.stderr)
        return 1
    synced = skipped = 0
    deadline = time.monotonic() + args.timeout
    probe = True
    while time.monotonic() < deadline:
        drainer.ingest()
        result = drainer.drain(probe=probe, max_chunks=10)
        probe = False
        synced += result["synced"]
        skipped += result["skipped"]
        if tty:
            print(f"\rsynced {synced}/{total}  dead-lettered {skipped}", end="", file=sys.stderr, flush=True)
        if result["state"] == "busy":
            time.sleep(0.2)  # another process holds the drain lease; let it finish
            continue
        if result["state"] != "done" or core.outbox.pending() == 0 and not drainer.spool.files():
            break
    if tty:
        print(file=sys.stderr)
    left = core.outbox.pending() + drainer.spool.count_events()
    print(json.dumps({"synced": synced, "dead_lettered": skipped, "left": left}))
    return 0 if left == 0 else 1


def _stats(core: Any, drainer: Any) -> dict:
    from .breaker import Breaker

    breaker = Breaker(core.store, failure_threshold=core.config.breaker_failure_threshold,
                      reset_timeout_s=core.config.breaker_reset_timeout_s, probe_ttl_s=1.0, owner=core.owner)
    health = core.store.get("health") or {}
    return {
        "cache_dir": core.outbox.directory,
        "pending": core.outbox.pending(),
        "pending_bytes": core.outbox.pending_bytes(),
        "spooled": drainer.spool.count_events(),
        "dead_letter": core.outbox.dead_count(),
        "breaker": breaker.snapshot(),
        "health": {"is_healthy": health.get("healthy"), "reason": health.get("reason"),
                   "checked_at": health.get("wall")},
        "drain_lease_holder": core.outbox.lease_holder("drain"),
    }


def cmd_stats(args: "argparse.Namespace") -> int:
    core, _, drainer = _open(_config(args), network=False)
    stats = _stats(core, drainer)
    if args.json:
        print(json.dumps(stats, indent=2, default=str))
        return 0
    rows = [("cache", stats["cache_dir"]), ("pending events", stats["pending"]),
            ("pending bytes", stats["pending_bytes"]), ("spooled events", stats["spooled"]),
            ("dead letters", stats["dead_letter"]), ("breaker", f"{stats['breaker']['state']} "
             f"({stats['breaker']['failure_count']} failures)"),
            ("health", f"{stats['health']['is_healthy']} ({stats['health']['reason']})"),
            ("drain lease", stats["drain_lease_holder"] or "-")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_cleanup(args: "argparse.Namespace") -> int:
    config = _config(args)
    core, _, _ = _open(config, network=False)
    days = config.cache_max_age_days if args.max_age_days is None else args.max_age_days
    counts = core.outbox.cleanup(days * 86400.0)
    print(json.dumps(dict(counts, max_age_days=days)))
    return 0


def cmd_dead_letter(args: "argparse.Namespace") -> int:
    core, _, _ = _open(_config(args), network=False)
    letters = core.outbox.dead_letters()
    if args.action == "list":
        rows = []
        for key, value in letters:
            try:
                event = json.loads(value["event"])
            except ValueError:
                event = {}
            rows.append({"key": key, "at": value.get("t"), "reason": value.get("reason"),
                         "detail": value.get("detail"), "event_type": event.get("event_type"),
                         "pattern_id": event.get("pattern_id"),
                         "event_id": (event.get("pattern_data") or {}).get("event_id")})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['event_id']}  {row['event_type']}  {row['pattern_id']}  {row['reason']}: {row['detail']}")
            print(f"{len(rows)} dead letters")
        return 0
    if args.action == "retry":
        events = [value["event"] for _, value in letters]
        if events and not core.outbox.append(events):
            print("pattern-track: the outbox is full; nothing moved", file=sys.stderr)
            return 1
        core.outbox.remove_dead([key for key, _ in letters])
        print(f"{len(events)} dead letters moved back to the outbox")
        return 0
    removed = core.outbox.remove_dead([key for key, _ in letters])
    print(f"{removed} dead letters purged")
    return 0


def cmd_doctor(args: "argparse.Namespace") -> int:
    import dataclasses
    import stat

    config = _config(args)
    print("configuration in force:")
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "api_key":
            value = "set" if value else None
        print(f"  {field.name} = {value!r}")
    path = config.resolved_cache_dir
    problems = 0
    try:
        core, _, drainer = _open(config, network=True)
    except SystemExit as exc:
        print(f"cache: {exc}")
        return 1
    mode = stat.S_IMODE(os.stat(path).st_mode)
    print(f"cache: {path} (mode {mode:o}{'' if mode == 0o700 else ', expected 700'})")
    problems += mode != 0o700
    stats = _stats(core, drainer)
    print(f"outbox: {stats['pending']} events ({stats['pending_bytes']} bytes), "
          f"{stats['spooled']} spooled, {stats['dead_letter']} dead letters")
    print(f"breaker: {stats['breaker']['state']}, {stats['breaker']['failure_count']} failures")
    healthy = core.health.check()
    print(f"service: {config.base_url} is {'healthy' if healthy else 'NOT healthy'} ({core.health.snapshot()['reason']})")
    problems += not healthy
    return 0 if problems == 0 else 1


def _parser() -> "argparse.ArgumentParser":
    import argparse  # not on the hook's path

    parser = argparse.ArgumentParser(prog="pattern-track", description="Pattern lineage tracking client.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="service base URL (default: INTELLIGENCE_SERVICE_URL)")
    common.add_argument("--cache-dir", help="cache directory (default: PATTERN_CACHE_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hook", help="the Claude Code hook (reads one payload on stdin; see hook --help)",
                   description=HOOK_HELP.split("\n\n", 1)[1],
                   formatter_class=argparse.RawDescriptionHelpFormatter).set_defaults(func=cmd_hook)
    p = sub.add_parser("install", help="put the hook into Claude Code's settings.json (or take it out)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Merge into hooks.PostToolUse of a Claude Code settings file an entry that runs\n"
                                   "this installation's `pattern-track hook` (by absolute path) after Write, Edit,\n"
                                   "MultiEdit and NotebookEdit. Other hooks and keys are kept; a second run changes\n"
                                   "nothing; an entry from another installation is replaced. The previous file is\n"
                                   "kept as settings.json.bak-<time>-<random> whenever it changes.",
                       epilog="exit status:\n"
                              "  0    installed, updated, already installed, removed or not there (or a dry run)\n"
                              "  1    the settings file is not valid JSON, has the wrong shape or cannot be written;\n"
                              "       it is left untouched\n"
                              "  2    usage error (argparse)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="~/.claude/settings.json, every project (the default)")
    where.add_argument("--project", action="store_true", help=".claude/settings.json under the current directory")
    where.add_argument("--settings", metavar="PATH", help="this settings file (default: the --user file)")
    p.add_argument("--uninstall", action="store_true", help="remove pattern_track's entry instead (default: install)")
    p.add_argument("--dry-run", action="store_true", help="print the change as a diff, write nothing (default: off)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary (default: summary)")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("drain", parents=[common], help="deliver the outbox until idle (used by the hook)")
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--idle", type=float, default=2.0, help="exit after this many idle seconds")
    p.add_argument("--max", type=float, default=120.0, help="exit after this many seconds in all")
    p.set_defaults(func=cmd_drain)
    p = sub.add_parser("sync", parents=[common], help="deliver the outbox now; exit 1 if anything is left")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("stats", parents=[common], help="outbox, breaker and health state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("cleanup", parents=[common], help="remove entries older than the maximum age")
    p.add_argument("--max-age-days", type=float)
    p.set_defaults(func=cmd_cleanup)
    p = sub.add_parser("dead-letter", parents=[common], help="list, retry or purge dead letters")
    p.add_argument("action", choices=["list", "retry", "purge"], nargs="?", default="list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dead_letter)
    sub.add_parser("doctor", parents=[common], help="check configuration, cache and service").set_defaults(func=cmd_doctor)
    sub.add_parser("serve", help="run the reference collector (pattern-track serve --help)", add_help=False)
    return parser


def _hook(argv: Sequence[str]) -> int:
    """``pattern-track hook``: help and the terminal check here, then the hook itself."""
    if "-h" in argv or "--help" in argv:
        print(HOOK_HELP, end="")
        return 0
    try:
        terminal = sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        terminal = False
    if terminal:
        print("pattern-track hook: stdin is a terminal, not a hook payload. Claude Code runs it with one\n"
              "hook JSON payload on stdin; install it with `pattern-track install`.", file=sys.stderr)
        return 2
    from .hook import run  # the fast path: no argparse, nothing else

    return run()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hook"]:
        return _hook(argv[1:])
    if argv[:1] == ["serve"]:  # the collector parses its own options
        from .collector import main as serve

        return serve(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .errors import PatternTrackError

        known = isinstance(exc, PatternTrackError)  # our messages are written to be read as they are
        print(f"pattern-track: {exc}" if known else f"pattern-track: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
