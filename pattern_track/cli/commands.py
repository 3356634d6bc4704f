"""``pattern-track`` sync, stats, cleanup and dead-letter: what waits in a service's store
and its delivery now (the conventions are cli.py's)."""

from __future__ import annotations

import json
import sys
import time
TYPE_CHECKING = False  # typing costs ~2.5 ms to import

if TYPE_CHECKING:
    from typing import Any, Sequence
    import argparse

from .common import CliError, _config, _emit, _iso, _open, _table

__all__ = ["cmd_cleanup", "cmd_dead_letter", "cmd_stats", "cmd_sync"]


class _Watch:
    """Stands in for ``core.delivery`` to remember the last answer that kept events back."""

    def __init__(self, delivery: Any) -> None:
        self._delivery = delivery
        self.last: Any = None  # the last Outcome that kept an event, from the last send
        self.kept = 0

    def send(self, events: Sequence[bytes]) -> list:
        from ..delivery.outcome import OK, PERMANENT

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
    elif last is not None and last.reason == "cut":
        why.update(reason="timeout", detail="--timeout reached while a request was in flight (cut; its events "
                   "stay and are sent again; the service may have stored them already)")
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
    from ..store.stores import elsewhere, legacy_waiting

    return elsewhere(config.resolved_cache_dir, config.service_dir), legacy_waiting(config.resolved_cache_dir)


def _elsewhere_lines(others: dict, legacy: dict | None) -> list[str]:
    lines = []
    for url, counts in others.items():
        if "error" in counts:
            lines.append(f"another service: {url}: its store cannot be read ({counts['error']})")
            continue
        waiting = sum(v for k, v in counts.items() if k in ("pending", "spooled", "journal"))
        dead = f", {counts['dead_letter']} dead letters" if counts.get("dead_letter") else ""
        how = (f" (pattern-track sync --url {url} delivers them)" if waiting and "://" in url
               else " (its service.json is unreadable: the URL is unknown)" if "://" not in url else "")
        lines.append(f"another service: {url}: {waiting} events wait{dead}{how}")
    if legacy:
        waiting = sum(v for k, v in legacy.items() if k in ("pending", "spooled", "journal"))
        lines.append(f"legacy store (from before per-service stores, service unknown): "
                     f"{legacy.get('error') or f'{waiting} events wait'}; "
                     f"`pattern-track sync --url URL --adopt-legacy` sends them to URL")
    return lines


def _ended_journals(config: Any) -> int:
    """Events in journals of ended or ending processes of this service, not yet adopted."""
    from ..store.inventory import journals

    ended, ending, _ = journals(config.service_dir)
    return ended + ending


def _resume_drainer(config: Any, waiting: Any) -> str:
    """Make sure a drainer delivers what waits (after a reboot the CLI resumes it):
    ``running``, ``started``, ``not needed`` or ``off`` (``handoff=false``)."""
    from ..process.launcher import drainer_running, ensure_drainer
    from ..process.lifecycle import HANDOFF_SETTINGS

    if drainer_running(config.service_dir):
        return "running"
    if not waiting.undelivered:
        return "not needed"
    if not config.handoff:
        return "off"
    settings = {name: getattr(config, name) for name in HANDOFF_SETTINGS}
    try:
        started = ensure_drainer(config.resolved_cache_dir, service_dir=config.service_dir, settings=settings)
    except OSError as exc:
        return f"cannot start ({type(exc).__name__})"
    return "started" if started else "running"


def cmd_sync(args: "argparse.Namespace") -> int:
    deadline = time.monotonic() + args.timeout  # --timeout covers start-up and the health check too
    config = _config(args)
    core, _, drainer = _open(config, network=True)
    adopted = None
    if args.adopt_legacy:
        from ..store.stores import adopt_legacy

        adopted = adopt_legacy(config.resolved_cache_dir, core.outbox, chunk_size=config.batch_size)
    watch = core.delivery = _Watch(core.delivery) if core.delivery is not None else None
    tty = sys.stderr.isatty() and not args.json
    drainer.ingest()
    total = core.outbox.pending()
    synced = skipped = 0
    state = None
    # Health is advice: it is reported, but sync always tries (one probe even while the
    # breaker is open or health says degraded; only a request refills the service's pool).
    if core.health is not None and deadline - time.monotonic() > config.health_check_timeout_s:
        healthy = core.health.check()
    else:  # no time for a live check within --timeout: the last answer is reported
        snapshot = core.health.snapshot() if core.health is not None else {}
        # Never checked: unknown, so not given as the reason events are left.
        healthy = core.health is not None and (snapshot.get("reason") is None or bool(snapshot.get("is_healthy")))
    probe = True
    while core.delivery is not None and time.monotonic() < deadline:
        drainer.ingest()
        result = drainer.drain(probe=probe, max_chunks=10, timeout_s=max(deadline - time.monotonic(), 0.0))
        state, probe = result["state"], False
        synced += result["synced"]
        skipped += result["skipped"]
        if tty:
            print(f"\rsynced {synced}/{total}  dead-lettered {skipped}", end="", file=sys.stderr, flush=True)
        if state == "busy":
            time.sleep(0.2)  # another process holds the drain lease; let it finish
            continue
        # Done only when nothing is left to move in either: a full outbox takes the
        # spool and the journals of ended processes a part at a time.
        if state != "done" or (core.outbox.front() is None and not drainer.spool.files()
                               and not _ended_journals(config)):
            if state == "done":
                drainer.retry_parked()  # those due now; the rest keep their own schedule
            break
    if tty:
        print(file=sys.stderr)
    left = core.outbox.pending() + drainer.spool.count_events() + _ended_journals(config)
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
    if adopted and adopted["busy"]:
        lines.append("legacy store: another process is adopting it; nothing adopted here")
    elif adopted:
        lines.append(f"legacy store: {adopted['moved']} events and {adopted['dead_letters']} dead letters "
                     f"adopted, {adopted['left']} left")
    if left:
        lines.append(f"why: {doc['detail'] or doc['reason']}")
        lines.append(f"next attempt: {doc['next_attempt_at'] or 'at the next hook, or run `pattern-track sync` again'}")
    if skipped:
        # Refused for good by the service: not lost, but not delivered either; say so.
        lines.append(f"dead-lettered: {skipped} events the service refused; see `pattern-track dead-letter`")
    from ..store.inventory import take

    waiting = take(config.service_dir, core.outbox)
    doc["quarantined"] = waiting.quarantined
    if left:
        doc["drainer"] = _resume_drainer(config, waiting)  # what is left goes on by itself
        lines.append(f"drainer: {doc['drainer']}")
    _emit(args, doc, lines + _quarantine_lines(waiting.quarantined) + _elsewhere_lines(others, legacy))
    busy = bool(adopted and adopted["busy"])  # the legacy store still waits, for another process
    return 0 if left == 0 and skipped == 0 and not busy else 1


def _stats(core: Any, drainer: Any) -> dict:
    from ..delivery.breaker import Breaker
    from ..process.launcher import drainer_running
    from ..store.inventory import take

    config = core.config
    breaker = Breaker(core.store, failure_threshold=config.breaker_failure_threshold,
                      reset_timeout_s=config.breaker_reset_timeout_s, probe_ttl_s=1.0, owner=core.owner)
    health = core.store.get("health") or {}
    age = None if health.get("monotonic") is None else max(time.monotonic() - health["monotonic"], 0.0)
    others, legacy = _elsewhere(config)
    waiting = take(config.service_dir, core.outbox)
    return {
        "service": config.base_url,
        "cache_dir": config.resolved_cache_dir,
        "store": core.outbox.directory,
        "other_services": others,
        "legacy": legacy,
        "pending": core.outbox.pending(),
        "journal_waiting": waiting.ended_journals + waiting.ending_journals,
        "pending_bytes": core.outbox.pending_bytes(),
        "spooled": waiting.spooled,
        "dead_letter": core.outbox.dead_count(),
        "waiting": waiting.as_dict(),
        "quarantined": waiting.quarantined,
        "breaker": breaker.snapshot(),
        "health": {"is_healthy": health.get("healthy"), "reason": health.get("reason"),
                   "last_check": _iso(health.get("wall")), "checked_at": health.get("wall"),
                   "age_s": None if age is None else round(age, 1)},
        "drain_lease_holder": core.outbox.lease_holder("drain"),
        "drainer_running": drainer_running(config.service_dir),
    }


def _quarantine_lines(names: list) -> list[str]:
    return [f"damaged, moved aside: {name} (delivery goes on without it; inspect it, then remove it)"
            for name in names]


def cmd_stats(args: "argparse.Namespace") -> int:
    from ..store.inventory import take

    config = _config(args)
    core, _, drainer = _open(config, network=False)
    stats = _stats(core, drainer)
    stats["drainer"] = _resume_drainer(config, take(config.service_dir, core.outbox))
    breaker, health, waiting = stats["breaker"], stats["health"], stats["waiting"]
    age = "never checked" if health["age_s"] is None else f"{_ago(health['age_s'])} ago"
    rows = [("service", stats["service"]), ("store", stats["store"]), ("pending events", stats["pending"]),
            ("pending bytes", stats["pending_bytes"]), ("spooled events", stats["spooled"]),
            ("ended journals", stats["journal_waiting"])]
    if waiting["live_journals"]:
        rows.append(("live journals", f"{waiting['live_journals']} (their processes deliver them)"))
    rows += [("dead letters", stats["dead_letter"]),
             ("breaker", f"{breaker['state']} ({breaker['failure_count']} failures"
                         + (f", probe in {breaker['seconds_until_probe']:.0f} s)" if breaker["seconds_until_probe"]
                            else ")")),
             ("health", f"{health['is_healthy']} ({health['reason']}), {age}"),
             ("drain lease", stats["drain_lease_holder"] or "-"),
             ("drainer", stats["drainer"])]
    _emit(args, stats, _table(rows) + _quarantine_lines(stats["quarantined"])
          + _elsewhere_lines(stats["other_services"], stats["legacy"]))
    return 0


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
