"""``pattern-track sync`` and ``drain``: deliver what waits for a service now, or until nothing
does (the conventions are main.py's)."""

from __future__ import annotations

import sys
import time

from .common import _config, _emit, _iso, _open
from .waiting import _elsewhere, _elsewhere_lines, _quarantine_lines, _resume_drainer

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

__all__ = ["cmd_drain", "cmd_sync"]


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
    last, kept = (watch.last, watch.kept) if watch else (None, 0)
    answer = f"{last.reason}{': ' + last.detail if last.detail else ''}" if last else None
    why = {"reason": "unknown", "detail": f"delivery stopped ({state})", "next_attempt_at": probe_at,
           "retrying": kept if last else 0}
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
        why.update(reason="retrying", detail=f"{kept} events will be retried; last answer {answer}")
    elif state == "busy":
        why.update(reason="busy", detail=f"another process is delivering ({core.outbox.lease_holder('drain')})")
    elif state == "unavailable":
        why.update(reason="outbox_unavailable", detail="the outbox or the network parts could not be used")
    elif timed_out:
        why.update(reason="timeout", detail="--timeout reached before everything was delivered")
    return why


def _ended_journals(config: Any) -> int:
    """Events in journals of ended or ending processes of this service, not yet adopted."""
    from ..store.inventory import journals

    ended, ending, _ = journals(config.service_dir)
    return ended + ending


def cmd_sync(args: argparse.Namespace) -> int:
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


def cmd_drain(args: argparse.Namespace) -> int:
    from ..process import detached

    return detached.run(_config(args), after_pid=args.after_pid, idle_s=args.idle, max_s=args.max,
                        detached=args.detached)
