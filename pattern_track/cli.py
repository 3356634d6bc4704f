"""``pattern-track``: the command line (hook, install, drain, sync, stats, cleanup, dead-letter, doctor, serve).

One convention for every command: a readable summary on stdout, JSON instead with
``--json``; errors are one line on stderr; exit 0 when all is well, 1 when work is left
or a problem was found, 2 for a usage error (argparse's own code), which includes a
destructive action without ``--yes``. Commands that delete have ``--dry-run``.

``hook`` is the exception: run by Claude Code, it always exits 0 and prints nothing (the
hook host's rules). ``main()`` handles it before argparse is even imported, and heavy
imports happen inside each command, so the hook stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
TYPE_CHECKING = False  # typing costs ~2.5 ms; the hook runs through this module

if TYPE_CHECKING:
    from typing import Any, Sequence
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


class CliError(Exception):
    """A command cannot do its work; ``main`` prints it as one line and exits 1."""


def _iso(wall: float | None) -> str | None:
    import datetime

    return None if wall is None else datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).isoformat(timespec="seconds")


def _config(args: "argparse.Namespace", warnings: list | None = None) -> Any:
    """The configuration in force; ``from_env``'s warnings go to ``warnings`` or to stderr."""
    from .config import Config

    overrides = {}
    if getattr(args, "url", None):
        overrides["base_url"] = args.url
    if getattr(args, "cache_dir", None):
        overrides["cache_dir"] = args.cache_dir
    config = Config.from_env(**overrides)
    if warnings is not None:
        warnings.extend(config.warnings)
    else:
        for message in config.warnings:
            print(f"pattern-track: warning: {message}", file=sys.stderr)
    return config


def _open(config: Any, *, network: bool) -> Any:
    """Core, dispatcher and drainer on this thread (no background threads)."""
    from .clock import Clock
    from .core import Core, Counters
    from .dispatcher import Dispatcher
    from .drainer import Drainer

    core = Core(config, Clock(), Counters())
    core.start(network=network)
    if core.outbox is None:
        raise CliError(f"outbox unavailable: {core.outbox_error}")
    dispatcher = Dispatcher(core)
    return core, dispatcher, Drainer(core, dispatcher)


def _emit(args: "argparse.Namespace", doc: Any, lines: Sequence[str]) -> None:
    """``doc`` as JSON with ``--json``, else the human ``lines``."""
    print(json.dumps(doc, indent=2, default=str) if args.json else "\n".join(lines))


def _table(rows: Sequence[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows]


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
    from .services import prepare

    cache_dir = prepare(config.service_dir, config.base_url)  # lock and resume time: per service
    if args.after_pid:
        from .launcher import pid_running

        give_up = time.monotonic() + 30.0  # the exiting process has nothing left to wait for
        while pid_running(args.after_pid) and time.monotonic() < give_up:
            time.sleep(0.01)
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


class _Watch:
    """Stands in for ``core.delivery`` to remember the last answer that kept events back."""

    def __init__(self, delivery: Any) -> None:
        self._delivery = delivery
        self.last: Any = None  # the last Outcome that kept an event, from the last send
        self.kept = 0

    def send(self, events: Sequence[bytes]) -> list:
        from .outcome import OK, PERMANENT

        outcomes = self._delivery.send(events)
        kept = [o for o in outcomes if o.kind not in (OK, PERMANENT)]
        self.last, self.kept = (kept[-1] if kept else None), len(kept)
        return outcomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._delivery, name)


def _why(core: Any, state: str | None, healthy: bool, watch: _Watch | None, timed_out: bool) -> dict:
    """Why events are left after a sync: ``reason``, ``detail``, ``next_attempt_at``, ``retrying``."""
    now = time.time()
    wait = core.breaker.seconds_until_probe() if core.breaker else 0.0
    probe_at = _iso(now + wait) if wait > 0 else None
    last = watch.last if watch else None
    answer = f"{last.reason}{': ' + last.detail if last.detail else ''}" if last else None
    why = {"reason": "unknown", "detail": f"delivery stopped ({state})", "next_attempt_at": probe_at,
           "retrying": watch.kept if last else 0}
    if not healthy:
        reason = core.health.snapshot()["reason"] if core.health else "no network parts"
        why.update(reason="service_unhealthy", detail=f"service unhealthy at {core.config.base_url} ({reason})")
    elif wait > 0:
        why.update(reason="breaker_open", detail=f"circuit breaker open until {probe_at} ({core.breaker.failure_count} "
                   "failures in a row" + (f", last answer {answer})" if last else ")"))
    elif state == "rate_limited":
        at = _iso(now + core.not_before_s())
        why.update(reason="rate_limited", next_attempt_at=at,
                   detail=f"the service is rate-limiting us: every client waits (Retry-After) until {at}")
    elif last is not None and last.reason == "rate_limited":
        at = _iso(now + last.retry_after_s) if last.retry_after_s else None
        why.update(reason="rate_limited", next_attempt_at=at,
                   detail="the service is rate-limiting us" + (f"; it asks to wait until {at}" if at else ""))
    elif last is not None:
        why.update(reason="retrying", detail=f"{watch.kept} events will be retried; last answer {answer}")
    elif state == "busy":
        why.update(reason="busy", detail=f"another process is delivering ({core.outbox.lease_holder('drain')})")
    elif state == "unavailable":
        why.update(reason="outbox_unavailable", detail="the outbox or the network parts could not be used")
    elif timed_out:
        why.update(reason="timeout", detail="--timeout reached before everything was delivered")
    return why


def _elsewhere(config: Any) -> tuple[dict, dict | None]:
    """(other services' waiting events, the legacy store's or None): shown, never sent."""
    from .stores import elsewhere, legacy_waiting

    return elsewhere(config.resolved_cache_dir, config.service_dir), legacy_waiting(config.resolved_cache_dir)


def _elsewhere_lines(others: dict, legacy: dict | None) -> list[str]:
    lines = []
    for url, counts in others.items():
        waiting = sum(v for k, v in counts.items() if k in ("pending", "spooled", "journal"))
        lines.append(f"another service: {url}: {counts.get('error') or f'{waiting} events wait'} "
                     f"(pattern-track sync --url {url} delivers them)")
    if legacy:
        waiting = sum(v for k, v in legacy.items() if k in ("pending", "spooled", "journal"))
        lines.append(f"legacy store (from before per-service stores, service unknown): "
                     f"{legacy.get('error') or f'{waiting} events wait'}; "
                     f"`pattern-track sync --url URL --adopt-legacy` sends them to URL")
    return lines


def cmd_sync(args: "argparse.Namespace") -> int:
    config = _config(args)
    core, _, drainer = _open(config, network=True)
    adopted = None
    if args.adopt_legacy:
        from .stores import adopt_legacy

        adopted = adopt_legacy(config.resolved_cache_dir, core.outbox, chunk_size=config.batch_size)
    watch = core.delivery = _Watch(core.delivery) if core.delivery is not None else None
    tty = sys.stderr.isatty() and not args.json
    drainer.ingest()
    total = core.outbox.pending()
    synced = skipped = 0
    state = None
    # Health is advice: it is reported, but sync always tries (one probe even while the
    # breaker is open or health says degraded; only a request refills the service's pool).
    healthy = core.health is not None and core.health.check()
    deadline = time.monotonic() + args.timeout
    probe = True
    while core.delivery is not None and time.monotonic() < deadline:
        drainer.ingest()
        result = drainer.drain(probe=probe, max_chunks=10)
        state, probe = result["state"], False
        synced += result["synced"]
        skipped += result["skipped"]
        if tty:
            print(f"\rsynced {synced}/{total}  dead-lettered {skipped}", end="", file=sys.stderr, flush=True)
        if state == "busy":
            time.sleep(0.2)  # another process holds the drain lease; let it finish
            continue
        if state != "done" or core.outbox.front() is None and not drainer.spool.files():
            if state == "done":
                drainer.retry_parked()  # those due now; the rest keep their own schedule
            break
    if tty:
        print(file=sys.stderr)
    left = core.outbox.pending() + drainer.spool.count_events()
    parked = len(core.outbox.parked())
    others, legacy = _elsewhere(config)
    doc = {"synced": synced, "dead_lettered": skipped, "left": left, "parked": parked,
           "reason": None, "detail": None, "next_attempt_at": None, "retrying": 0,
           "service": config.base_url, "other_services": others, "legacy": legacy, "adopted_legacy": adopted}
    if left:
        doc.update(_why(core, state, healthy, watch, time.monotonic() >= deadline))
    if left and left == parked:
        doc.update(reason="parked", detail=f"{parked} events the service refused for their own sake "
                   "(parent not found, unknown error type) retry on their own schedule; nothing else waits")
    lines = [f"synced {synced}, dead-lettered {skipped}, left {left} (service {config.base_url})"]
    if adopted:
        lines.append(f"legacy store: {adopted['moved']} events and {adopted['dead_letters']} dead letters "
                     f"adopted, {adopted['left']} left")
    if left:
        lines.append(f"why: {doc['detail'] or doc['reason']}")
        lines.append(f"next attempt: {doc['next_attempt_at'] or 'at the next hook, or run `pattern-track sync` again'}")
    if skipped:
        # Refused for good by the service: not lost, but not delivered either; say so.
        lines.append(f"dead-lettered: {skipped} events the service refused; see `pattern-track dead-letter`")
    _emit(args, doc, lines + _elsewhere_lines(others, legacy))
    return 0 if left == 0 and skipped == 0 else 1


def _stats(core: Any, drainer: Any) -> dict:
    from .breaker import Breaker

    breaker = Breaker(core.store, failure_threshold=core.config.breaker_failure_threshold,
                      reset_timeout_s=core.config.breaker_reset_timeout_s, probe_ttl_s=1.0, owner=core.owner)
    health = core.store.get("health") or {}
    others, legacy = _elsewhere(core.config)
    return {
        "service": core.config.base_url,
        "cache_dir": core.outbox.directory,
        "other_services": others,
        "legacy": legacy,
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
    breaker = stats["breaker"]
    _emit(args, stats, _table([
        ("service", stats["service"]), ("store", stats["cache_dir"]), ("pending events", stats["pending"]),
        ("pending bytes", stats["pending_bytes"]), ("spooled events", stats["spooled"]),
        ("dead letters", stats["dead_letter"]),
        ("breaker", f"{breaker['state']} ({breaker['failure_count']} failures"
                    + (f", probe in {breaker['seconds_until_probe']:.0f} s)" if breaker["seconds_until_probe"] else ")")),
        ("health", f"{stats['health']['is_healthy']} ({stats['health']['reason']})"),
        ("drain lease", stats["drain_lease_holder"] or "-")]) + _elsewhere_lines(stats["other_services"],
                                                                                    stats["legacy"]))
    return 0


def cmd_cleanup(args: "argparse.Namespace") -> int:
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
        _emit(args, rows, [f"{r['event_id']}  {r['event_type']}  {r['pattern_id']}  {r['reason']}: {r['detail']}"
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


def _hook_locations() -> tuple[list[dict], list[str]]:
    """Our hook in the user's and this project's settings: ([{path, command, runnable}], errors)."""
    import shlex
    import shutil

    from . import installer

    project = os.path.dirname(installer.project_settings())
    found, errors = [], []
    for path in (installer.user_settings(), installer.project_settings(), os.path.join(project, "settings.local.json")):
        try:
            commands = installer.find(path)
        except installer.SettingsError as exc:
            errors.append(str(exc))
            continue
        for command in commands:
            # which() checks a path with a slash directly: is the hook's program still there?
            found.append({"path": path, "command": command, "runnable": bool(shutil.which(shlex.split(command)[0]))})
    return found, errors


def _last_failure(health: dict, breaker: dict) -> str | None:
    """The last failure any process recorded (health answer or breaker), before doctor's own check."""
    if health and not health.get("healthy"):
        return (f"service unhealthy ({health.get('reason')}) at {_iso(health.get('wall'))}; "
                f"failed health checks in a row: {health.get('consecutive_failures', 1)}")
    if breaker.get("failure_count"):
        return f"{breaker['failure_count']} failed deliveries in a row (breaker {breaker['state']})"
    return None


class _Report:
    """doctor's findings: lines to print, the JSON document, problems, and steps (most urgent first)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.doc: dict = {}
        self.steps: list[str] = []
        self.problems = 0

    def problem(self, step: str) -> None:
        self.problems += 1
        self.steps.append(step)


def _doctor_config(args: "argparse.Namespace", report: _Report) -> Any:
    from .config import fields

    warnings: list[str] = []
    config = _config(args, warnings)
    shown = {}
    for name in fields():
        value = getattr(config, name)
        if name == "api_key":
            value = "set" if value else None
        elif name == "cache_dir":  # the directory in use, never None
            value = os.path.abspath(os.path.expanduser(config.resolved_cache_dir))
        shown[name] = value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)
    report.doc.update(config=shown, warnings=warnings)
    report.lines += ["configuration in force:"] + [f"  {k} = {v!r}" for k, v in shown.items()]
    report.lines += [f"warning: {w}" for w in warnings] or ["warnings: none"]
    return config


def _doctor_cache_and_service(config: Any, report: _Report) -> dict | None:
    """Cache, outbox, breaker, last failure and a live health check; the outbox stats, or None."""
    import stat

    path = os.path.abspath(os.path.expanduser(config.resolved_cache_dir))
    try:
        core, _, drainer = _open(config, network=True)
    except CliError as exc:
        report.doc["cache"] = {"path": path, "mode": None, "error": str(exc)}
        report.lines.append(f"cache: {path}: {exc}")
        report.problem(f"make {path} a usable private directory, or set PATTERN_CACHE_DIR to one")
        return None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    report.doc["cache"] = {"path": path, "mode": f"{mode:o}", "error": None}
    report.lines.append(f"cache: {path} (mode {mode:o}{'' if mode == 0o700 else ', expected 700'})")
    if mode != 0o700:
        report.problem(f"chmod 700 {path}")
    stats = _stats(core, drainer)
    breaker = report.doc["breaker"] = stats["breaker"]
    report.doc["outbox"] = {k: stats[k] for k in ("pending", "pending_bytes", "spooled", "dead_letter")}
    report.lines.append(f"outbox: {stats['pending']} events ({stats['pending_bytes']} bytes), "
                        f"{stats['spooled']} spooled, {stats['dead_letter']} dead letters")
    probe = breaker["seconds_until_probe"]
    report.lines.append(f"breaker: {breaker['state']}, {breaker['failure_count']} failures"
                        + (f", next probe at {_iso(time.time() + probe)}" if probe else ""))
    last = report.doc["last_failure"] = _last_failure(core.store.get("health") or {}, breaker)
    report.lines.append(f"last failure: {last or 'none recorded'}")
    healthy = core.health is not None and core.health.check()
    reason = core.health.snapshot()["reason"] if core.health is not None else "network parts did not start"
    report.doc["service"] = {"url": config.base_url, "healthy": healthy, "reason": reason}
    report.lines.append(f"service: {config.base_url} is {'healthy' if healthy else 'NOT healthy'} ({reason})")
    if not healthy:
        report.problem(f"start the service at {config.base_url} or set INTELLIGENCE_SERVICE_URL; "
                       "events wait in the outbox meanwhile")
    return stats


def _doctor_hook(report: _Report) -> None:
    found, errors = _hook_locations()
    report.doc["hook"] = {"installed": bool(found), "locations": found, "errors": errors}
    report.lines += [f"hook: {e}" for e in errors]
    report.lines += [f"hook: installed in {f['path']}: `{f['command']}`"
                     + ("" if f["runnable"] else " (its program is missing)") for f in found]
    if errors:
        report.problem("repair the settings file named above (Claude Code cannot read it either)")
    if any(not f["runnable"] for f in found):
        report.problem("run `pattern-track install` to point the hook at this installation")
    if not found:
        report.lines.append("hook: not installed: run `pattern-track install`")
        report.steps.append("run `pattern-track install` so Claude Code's edits are tracked")  # a choice, not a fault


def cmd_doctor(args: "argparse.Namespace") -> int:
    report = _Report()
    config = _doctor_config(args, report)
    if report.doc["warnings"]:
        report.problem("fix or unset the environment variables in the warnings above")
    stats = _doctor_cache_and_service(config, report)
    _doctor_hook(report)
    if stats and stats["pending"] + stats["spooled"]:
        report.steps.append(f"run `pattern-track sync` to deliver the {stats['pending'] + stats['spooled']} waiting events")
    if stats and stats["dead_letter"]:
        report.steps.append(f"look at `pattern-track dead-letter list` ({stats['dead_letter']} events the service refused)")
    report.doc["problems"] = report.problems
    report.doc["next"] = report.steps[0] if report.steps else "nothing: all is well"
    _emit(args, report.doc, report.lines + [f"next: {report.doc['next']}"])
    return 0 if report.problems == 0 else 1


EXIT = "exit status:\n  0    {ok}\n  1    {one}\n  2    usage error (argparse){two}"


def _positive(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, minimum_excluded=True)


def _non_negative(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, minimum_excluded=False)


def _number(text: str, *, minimum_excluded: bool) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (minimum_excluded and value == 0):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if minimum_excluded else '>='} 0, got {text!r}")
    return value


def _url(text: str) -> str:
    import argparse

    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _parser() -> "argparse.ArgumentParser":
    import argparse  # not on the hook's path

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="pattern-track", formatter_class=raw,
        description="Pattern lineage tracking client: the Claude Code hook, its installer, and tools to\n"
                    "inspect and deliver the outbox. Every command prints a summary, or JSON with --json.",
        epilog=EXIT.format(ok="ok", one="work left, or a problem found (one line on stderr or in the output says which)",
                           two=", or a destructive action without --yes") + "\n  130  interrupted (Ctrl-C)\n\n"
               "destructive commands (cleanup, dead-letter retry/purge) take --dry-run; deleting undelivered\n"
               "events also takes --yes. `pattern-track COMMAND --help` for each command.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", type=_url, metavar="URL",
                        help="service base URL (default: $INTELLIGENCE_SERVICE_URL, else http://localhost:8053)")
    common.add_argument("--cache-dir", metavar="DIR",
                        help="cache directory (default: $PATTERN_CACHE_DIR, else ~/.cache/pattern_track)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a summary (default: summary)")
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true", help="say what would change, change nothing (default: off)")
    yes = argparse.ArgumentParser(add_help=False)
    yes.add_argument("--yes", action="store_true", help="confirm deleting undelivered events (default: off, refuse)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, summary: str, exits: dict, parents: Sequence = (common, as_json), **kw: Any) -> Any:
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
                            "kept as settings.json.bak-<time>-<random> whenever it changes.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="~/.claude/settings.json, every project (the default)")
    where.add_argument("--project", action="store_true", help=".claude/settings.json under the current directory")
    where.add_argument("--settings", metavar="PATH", help="this settings file (default: the --user file)")
    p.add_argument("--uninstall", action="store_true", help="remove pattern_track's entry instead (default: install)")
    p.add_argument("--dry-run", action="store_true", help="print the change as a diff, write nothing (default: off)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a summary (default: summary)")
    p = command("drain", cmd_drain, "deliver the outbox until idle (started by the hook)",
                {"ok": "the outbox is empty, or another drainer is at work", "one": "events were left when it stopped"},
                parents=(common,))
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--after-pid", type=int, metavar="PID",
                   help="first wait (up to 30 s) for process PID to end, then adopt its journal (default: none)")
    p.add_argument("--idle", type=_positive, default=2.0, metavar="SECONDS", help="exit after SECONDS idle (default 2)")
    p.add_argument("--max", type=_positive, default=120.0, metavar="SECONDS",
                   help="exit after SECONDS in all (default 120)")
    p = command("sync", cmd_sync, "deliver the outbox now and say why anything is left",
                {"ok": "everything was delivered", "one": "events are left or were dead-lettered (the output says why), or the cache is unusable"})
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

        known = isinstance(exc, (CliError, PatternTrackError))
        print(f"pattern-track: {exc}" if known else f"pattern-track: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
