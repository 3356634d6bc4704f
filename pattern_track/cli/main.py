"""``pattern-track``: the command line (hook, install, drain, sync, stats, cleanup, dead-letter, doctor, lineage,
serve).

One convention for every command: a readable summary on stdout, JSON instead with
``--json``; errors are one line on stderr; exit 0 when all is well, 1 when work is left
or a problem was found, 2 for a usage error (argparse's own code), which includes a
destructive action without ``--yes``. Commands that delete have ``--dry-run``.

``hook`` is the exception: run by Claude Code, it always exits 0 and prints nothing (the
hook host's rules). ``main()`` handles it before argparse is even imported, and heavy
imports happen inside each command, so the hook stays fast.
"""

from __future__ import annotations

import sys

from .common import CliError

TYPE_CHECKING = False  # typing costs ~2.5 ms; the hook runs through this module
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

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


def cmd_hook(args: argparse.Namespace) -> int:
    return _hook([])  # main() takes `hook` before argparse; this keeps the parser honest


EXIT = "exit status:\n  0    {ok}\n  1    {one}\n  2    usage error (argparse){two}"


def _parser() -> argparse.ArgumentParser:
    import argparse  # not on the hook's path

    from .argtypes import _hops, _non_negative, _pattern_id, _positive, _url
    from .cleanup import cmd_cleanup, cmd_dead_letter
    from .doctor import cmd_doctor
    from .install import cmd_install
    from .lineage import DEFAULT_DEPTH, DEFAULT_TIMEOUT_S, DESCRIPTION as LINEAGE, cmd_lineage
    from .stats import cmd_stats
    from .sync import cmd_drain, cmd_sync

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="pattern-track", formatter_class=raw,
        description="Pattern lineage tracking client: the Claude Code hook, its installer, and tools to\n"
                    "inspect and deliver the outbox. Every command prints a summary, or JSON with --json.",
        epilog=EXIT.format(ok="ok",
                           one="work left, or a problem found (one line on stderr or in the output says which)",
                           two=", or a destructive action without --yes") + "\n  130  interrupted (Ctrl-C)\n\n"
               "destructive commands (cleanup, dead-letter retry/purge) take --dry-run; deleting undelivered\n"
               "events also takes --yes. `pattern-track COMMAND --help` for each command.")
    from ..config import Config
    from ..config.env import variables
    from ..store.cachedir import DEFAULT_CACHE_DIR

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", type=_url, metavar="URL",
                        help=f"service base URL (default: {variables('base_url')}, else {Config.base_url})")
    common.add_argument("--cache-dir", metavar="DIR",
                        help=f"cache directory (default: {variables('cache_dir')}, else {DEFAULT_CACHE_DIR})")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a summary (default: summary)")
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true", help="say what would change, change nothing (default: off)")
    yes = argparse.ArgumentParser(add_help=False)
    yes.add_argument("--yes", action="store_true", help="confirm deleting undelivered events (default: off, refuse)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, summary: str, exits: dict, parents: Sequence = (common, as_json),
                **kw: Any) -> Any:
        p = sub.add_parser(name, parents=parents, help=summary, description=kw.pop("description", summary),
                           formatter_class=raw, epilog=EXIT.format(**{"two": "", **exits}), **kw)
        p.set_defaults(func=func)
        return p

    sub.add_parser("hook", help="the Claude Code hook (reads one payload on stdin; see hook --help)",
                   description=HOOK_HELP.split("\n\n", 1)[1], formatter_class=raw).set_defaults(func=cmd_hook)
    p = command("install", cmd_install, "put the hook into Claude Code's settings.json (or take it out)",
                {"ok": "installed, updated, already installed, removed or not there (or a dry run)",
                 "one": "the settings file is not valid JSON, has the wrong shape or cannot be written;\n"
                        "       it is left untouched"}, parents=(),
                description="Merge into hooks.PostToolUse of a Claude Code settings file an entry that runs\n"
                            "this installation's `pattern-track hook` (by absolute path) after Write, Edit,\n"
                            "MultiEdit and NotebookEdit. Other hooks and keys are kept; a second run changes\n"
                            "nothing; an entry from another installation is replaced. The previous file is\n"
                            "kept as settings.json.bak-<time>-<random> whenever it changes; older backups\n"
                            "of ours are removed, so one is kept.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="~/.claude/settings.json, every project (the default)")
    where.add_argument("--project", action="store_true", help=".claude/settings.json under the current directory")
    where.add_argument("--settings", metavar="PATH", help="this settings file (default: the --user file)")
    p.add_argument("--uninstall", action="store_true", help="remove pattern_track's entry instead (default: install)")
    p.add_argument("--dry-run", action="store_true", help="print the change as a diff, write nothing (default: off)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary (default: summary)")
    p = command("drain", cmd_drain, "deliver until nothing waits (started by the hook, exit and close())",
                {"ok": "nothing waits, or another drainer is at work",
                 "one": "events were left when it stopped (--max)"},
                parents=(common,),
                description="Deliver this service's outbox, spool and the journals of ended processes, and stay up\n"
                            "while anything waits or a live process's journal holds events: during an outage of\n"
                            "any length it sleeps, probing the service every few seconds. One per user and\n"
                            "service (a lock in the store); the hook, exit and close() start it when needed.")
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--after-pid", type=int, metavar="PID",
                   help="the process that started it: while PID lives and nothing else waits, wait "
                        "without loading the network parts (default: none)")
    p.add_argument("--idle", type=_positive, default=2.0, metavar="SECONDS",
                   help="exit once nothing has waited for SECONDS (default 2)")
    p.add_argument("--max", type=_positive, default=None, metavar="SECONDS",
                   help="exit after SECONDS in all, even with work left (default: no bound)")
    p = command("sync", cmd_sync, "deliver the outbox now and say why anything is left",
                {"ok": "everything was delivered",
                 "one": "events are left or were dead-lettered (the output says why), or the cache is unusable"})
    p.add_argument("--timeout", type=_positive, default=300.0, metavar="SECONDS",
                   help="stop delivering after SECONDS (default 300)")
    p.add_argument("--adopt-legacy", action="store_true",
                   help="first move the events of a cache from before per-service stores (which cannot say "
                        "which service they were for) to this service, --url (default: off, only reported)")
    command("stats", cmd_stats, "outbox, dead letters, breaker and last health answer",
            {"ok": "ok", "one": "the cache cannot be used"})
    p = command("cleanup", cmd_cleanup, "remove outbox entries and dead letters older than a maximum age",
                {"ok": "done (or a dry run)", "one": "the cache cannot be used",
                 "two": ", or undelivered events would be deleted without --yes"}, parents=(common, as_json, dry, yes),
                description="Remove outbox entries and dead letters older than a maximum age. Deleting\n"
                            "undelivered (pending) events needs --yes; old dead letters go without it.")
    p.add_argument("--max-age-days", type=_non_negative, metavar="DAYS",
                   help="remove what is older than DAYS (default: cache_max_age_days, 7); 0 removes "
                        "everything and needs --yes")
    p = command("dead-letter", cmd_dead_letter, "list, retry or purge dead letters (events the service refused)",
                {"ok": "done (or a dry run)", "one": "the outbox is full (retry), or the cache cannot be used",
                 "two": ", or purge without --yes"}, parents=(common, as_json, dry, yes),
                description="List dead letters with the service's reason, move them back to the outbox\n"
                            "(retry), or delete them (purge, which needs --yes).")
    p.add_argument("action", choices=["list", "retry", "purge"], nargs="?", default="list",
                   help="list (the default), retry or purge")
    command("doctor", cmd_doctor, "check configuration, cache, service and hook; say what next",
            {"ok": "no problem found", "one": "a problem found (the last line, next: ..., says what to do)"})
    p = command("lineage", cmd_lineage, "show what the service recorded about a pattern: ancestors and descendants",
                {"ok": "the pattern is stored (the output names any pattern that could not be read)",
                 "one": "the pattern is not stored, or the service cannot be read (one line on stderr says which)"},
                description=LINEAGE)
    p.add_argument("pattern_id", type=_pattern_id, metavar="PATTERN_ID",
                   help="the pattern id, e.g. python-code-226225de545b")
    p.add_argument("--depth", type=_hops, default=DEFAULT_DEPTH, metavar="N",
                   help=f"follow at most N edges each way (default {DEFAULT_DEPTH}; 0: the pattern alone)")
    p.add_argument("--timeout", type=_positive, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"stop reading after SECONDS in all (default {DEFAULT_TIMEOUT_S:g})")
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
        from ..collector import main as serve

        return serve(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from ..errors import PatternTrackError

        known = isinstance(exc, (CliError, PatternTrackError))
        print(f"pattern-track: {exc}" if known else f"pattern-track: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
