"""``pattern-track cleanup`` and ``dead-letter``: what the store kept too long, and what the
service refused (the conventions are main.py's)."""

from __future__ import annotations

import json
import sys
import time

from .common import CliError, _config, _emit, _open

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse

__all__ = ["cmd_cleanup", "cmd_dead_letter"]


def cmd_cleanup(args: argparse.Namespace) -> int:
    if args.max_age_days == 0 and not (args.yes or args.dry_run):
        print("pattern-track: --max-age-days 0 deletes everything; pass --yes to mean it, or --dry-run",
              file=sys.stderr)
        return 2
    config = _config(args)
    core, _, _ = _open(config, network=False)
    days = config.cache_max_age_days if args.max_age_days is None else args.max_age_days
    now = time.time()
    cutoff = now - days * 86400.0
    events = sum(len(chunk.events) for chunk in core.outbox.chunks() if chunk.created < cutoff)
    dead = sum(1 for _, value in core.outbox.dead_letters() if value.get("t", 0) < cutoff)
    if events and not (args.yes or args.dry_run):
        print(f"pattern-track: cleanup would delete {events} undelivered events older than {days:g} days; "
              f"pass --yes to delete them, or --dry-run to see what would go", file=sys.stderr)
        return 2
    if not args.dry_run:
        counts = core.outbox.cleanup(days * 86400.0, now=now)
        events, dead = counts["expired_events"], counts["expired_dead_letters"]
    doc = {"expired_events": events, "expired_dead_letters": dead, "max_age_days": days, "dry_run": args.dry_run}
    verb = "would remove" if args.dry_run else "removed"
    _emit(args, doc, [f"{verb} {events} undelivered events and {dead} dead letters older than {days:g} days"])
    return 0


def cmd_dead_letter(args: argparse.Namespace) -> int:
    from ..delivery.answers import one_line

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
                         "detail": value.get("detail"), "summary": one_line(value.get("reason"), value.get("detail")),
                         "event_type": event.get("event_type"),
                         "pattern_id": event.get("pattern_id"),
                         "event_id": (event.get("pattern_data") or {}).get("event_id")})
        _emit(args, rows, [f"{r['event_id']}  {r['event_type']}  {r['pattern_id']}  {r['summary']}"
                           for r in rows] + [f"{len(rows)} dead letters"])
        return 0
    verb = "moved back to the outbox" if args.action == "retry" else "purged"
    if args.action == "purge" and letters and not (args.yes or args.dry_run):
        print(f"pattern-track: purge would delete {len(letters)} undelivered events for good; "
              f"pass --yes to delete them, or --dry-run", file=sys.stderr)
        return 2
    if args.dry_run:
        count = len(letters)
    elif args.action == "retry":
        events = [value["event"] for _, value in letters]
        if events and not core.outbox.append(events):
            raise CliError("the outbox is full; no dead letter moved")
        count = len(events)
        core.outbox.remove_dead([key for key, _ in letters])
    else:
        count = core.outbox.remove_dead([key for key, _ in letters])
    key = "moved" if args.action == "retry" else "purged"
    _emit(args, {key: count, "dry_run": args.dry_run},
          [f"{count} dead letters {'would be ' if args.dry_run else ''}{verb}"])
    return 0
