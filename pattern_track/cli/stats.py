"""``pattern-track stats``: what waits in a service's store, the breaker, and the last health
answer with its age (the conventions are main.py's)."""

from __future__ import annotations

import time

from .common import _config, _emit, _open, _table
from .waiting import _elsewhere, _elsewhere_lines, _quarantine_lines, _resume_drainer

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["cmd_stats"]


def _stats(core: Any, drainer: Any) -> dict:
    from ..delivery.breaker import Breaker
    from ..process.launcher import drainer_running
    from ..store.inventory import take

    config = core.config
    breaker = Breaker(core.store, failure_threshold=config.breaker_failure_threshold,
                      reset_timeout_s=config.breaker_reset_timeout_s, probe_ttl_s=1.0, owner=core.owner)
    from ..delivery.health import describe

    health = describe(core.store.get("health"), time.monotonic())  # as stats() in Python says it
    from ..clock import Clock
    from ..delivery.pacing import Pacer

    pace = Pacer(core.store, Clock()).snapshot() if core.store.get("pace") is not None else None
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
        "health": health,
        "rate_limit": pace,  # the machine's pace under the service's rate limit (delivery/pacing.py)
        "drain_lease_holder": core.outbox.lease_holder("drain"),
        "drainer_running": drainer_running(config.service_dir),
    }


def cmd_stats(args: argparse.Namespace) -> int:
    from ..store.inventory import take

    config = _config(args)
    core, _, drainer = _open(config, network=False)
    stats = _stats(core, drainer)
    stats["drainer"] = _resume_drainer(config, take(config.service_dir, core.outbox))
    breaker, health, waiting = stats["breaker"], stats["health"], stats["waiting"]
    said = "never checked" if health["age_s"] is None else (
        f"{health['is_healthy']} ({health['reason']}), {_ago(health['age_s'])} ago")
    rows = [("service", stats["service"]), ("store", stats["store"]), ("pending events", stats["pending"]),
            ("pending bytes", stats["pending_bytes"]), ("spooled events", stats["spooled"]),
            ("ended journals", stats["journal_waiting"])]
    if waiting["live_journals"]:
        rows.append(("live journals", f"{waiting['live_journals']} (their processes deliver them)"))
    rows += [("dead letters", stats["dead_letter"]),
             ("breaker", f"{breaker['state']} ({breaker['failure_count']} failures"
                         + (f", probe in {breaker['seconds_until_probe']:.0f} s)" if breaker["seconds_until_probe"]
                            else ")")),
             ("health", said),
             ("rate limit", _pace_line(stats["rate_limit"])),
             ("drain lease", stats["drain_lease_holder"] or "-"),
             ("drainer", stats["drainer"])]
    _emit(args, stats, _table(rows) + _quarantine_lines(stats["quarantined"])
          + _elsewhere_lines(stats["other_services"], stats["legacy"]))
    return 0


def _pace_line(pace: dict | None) -> str:
    if pace is None:
        return "no 429 or health answer seen yet"
    line = f"{pace['limit']} requests per {pace['window_s']:g} s (from health)"
    if pace["under_pressure"]:
        line += ", window seen full lately: full batches, sent when health shows room"
    if pace["wait_s"]:
        line += f", next request in {pace['wait_s']:.0f} s"
    return line + (f", {pace['refused']} x 429 seen" if pace["refused"] else "")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
