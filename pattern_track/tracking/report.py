"""What a tracker reports about itself: ``stats()`` and the original ``get_tracker_stats()``.

Each function here is a method of ``Tracker`` (tracker.py binds it, hence the first
parameter, ``self``). ``stats()`` is one consistent snapshot and true from the first
call (an existing outbox is opened on the caller's thread; no thread is started).
"""

from __future__ import annotations

import os

from .. import logs

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

    from ..tracker import Tracker

__all__ = ["get_tracker_stats", "stats"]

log = logs.get("pattern_track.report")  # its name from before it moved into tracking/


def stats(self: Tracker) -> dict[str, Any]:
    """This process's counts and the shared state, as one snapshot; never raises.

    Keys: ``accepted``, ``sent`` (delivered by this process, at once or from the
    outbox), ``pending`` (outbox, spool and journals of ended processes, every
    process; None only if the outbox cannot be read), ``spooled``, ``dead_letter`` (this process) and
    ``dead_letter_total`` (all), ``dropped`` (reason -> count, see ``track()``),
    ``conditions`` (things that happened to the process: ``journal_unwritable``,
    ``outbox_unavailable``, ...), ``breaker`` (``state``, ``failure_count``,
    ``seconds_until_probe``, ...), ``health`` (the last answer any process
    recorded: ``is_healthy``, ``reason``, ``checked_at`` epoch seconds, ``last_check`` the
    same as an ISO time, ``age_s`` seconds since, ``consecutive_failures``: the keys of
    ``pattern-track stats --json``), ``rate_limit`` (the machine's pace under the service's
    rate limit, shared by its processes: ``limit`` and ``window_s`` as health reports
    them, ``gap_s`` between requests, ``wait_s`` until the next, ``under_pressure`` (the
    window was seen full lately), ``refused`` 429s seen; None before the network parts
    are up; delivery/pacing.py), ``last_failure`` (the last answer that held events
    back: ``reason`` such as ``refused``, ``timed_out``, ``tls``, ``dns``, ``http_503``,
    ``rate_limited``, ``database_unavailable``; ``detail``; ``at`` epoch seconds; or
    None), ``outcomes`` (``accepted`` = ``delivered`` + ``outboxed`` + ``dead_lettered``
    + ``dropped_after_accept`` + ``buffered`` + ``in_flight`` + ``held_in_memory`` +
    ``journal_only``), ``journal``, ``config_warnings``, ``outbox``, ``waiting`` (what
    waits for this service, by place: ``outbox``, ``parked``, ``spooled``,
    ``ended_journals``, ``ending_journals``, ``live_journals``, ``undelivered``,
    ``dead_letter``, ``quarantined``; store/inventory.py), ``quarantined`` (damaged
    files of the store moved aside, until the user removes them). Every count but
    ``other_services`` is of this tracker's service (``service``, its base URL): the
    outbox, breaker and health are per service (services.py). ``other_services``:
    ``{base URL: {pending, spooled, journal, dead_letter}}`` of other services' stores
    in the same cache directory, which this tracker never sends; ``legacy``: the same
    counts for a store from before per-service stores, or None. On an internal
    error: ``{"error": "..."}``.
    """
    try:
        return _stats(self)
    except Exception as exc:
        log.error("stats failed", exc_info=True)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _stats(self: Tracker) -> dict[str, Any]:
    counters = self._counters
    with counters._lock:
        values = dict(counters.values)
        dropped = dict(counters.dropped)
        conditions = dict(counters.conditions)
    memory = self._dispatcher.counts()
    core = self._core
    if not self._started and self.config.enabled and os.path.exists(
            os.path.join(self.config.service_dir, "cache.db")):
        core.open_outbox()  # true counts from the first call, no thread started
    ready = core.outbox_ready.wait(0.5 if self._started else 0.0)
    pending = dead = None
    spooled = 0
    if ready and core.outbox is not None:
        # One snapshot: no event moves from the spool to the outbox between the reads.
        with self._drainer.moving:
            spooled = self._spool.count_events()
            try:
                pending = core.outbox.pending() + spooled + _ended_journals(self)
                dead = core.outbox.dead_count()
            except Exception:
                pass
    else:
        spooled = self._spool.count_events()
        if not os.path.exists(os.path.join(self.config.service_dir, "cache.db")):
            pending, dead = spooled, 0  # no outbox yet: nothing waits in it
    from ..delivery.health import describe
    from ..store.inventory import take

    waiting = take(self.config.service_dir, core.outbox if ready else None)
    breaker = {"state": "closed", "failure_count": 0}
    health = describe(None, 0.0)
    pacing = None
    try:
        if core.pacer is not None:
            pacing = core.pacer.snapshot()
        if core.breaker is not None:
            breaker = core.breaker.snapshot()
        if core.health is not None:
            health = core.health.snapshot()
    except Exception:
        pass
    return {
        "enabled": self.config.enabled,
        "accepted": values["accepted"],
        "sent": values["delivered"] + values["replayed"],
        "pending": pending,
        "spooled": spooled,
        "dead_letter": values["dead_lettered"] + values["replay_dead_lettered"],
        "dead_letter_total": dead,
        "dropped": dropped,
        "conditions": conditions,
        "breaker": breaker,
        "health": health,
        # The machine's pace under the service's rate limit (delivery/pacing.py), once known.
        "rate_limit": pacing,
        "outcomes": {
            "accepted": values["accepted"], "delivered": values["delivered"],
            "outboxed": values["outboxed"], "dead_lettered": values["dead_lettered"],
            "dropped_after_accept": values["dropped_after_accept"], "buffered": memory["buffered"],
            "in_flight": memory["in_flight"], "held_in_memory": memory["held"],
            "journal_only": memory["journal_only"],
        },
        "journal": {"unsettled": self._journal.next_seq - self._journal.watermark,
                    "usable": self._journal_ok, "fsync": self.config.journal_fsync},
        "config_warnings": list(self.config.warnings),
        "last_failure": core.delivery.last_failure if core.delivery is not None else None,
        "replayed": values["replayed"],
        "requests": core.delivery.requests if core.delivery is not None else 0,
        "outbox": {"path": self.config.service_dir, "available": core.outbox is not None if ready else None,
                   "error": core.outbox_error},
        "service": self.config.base_url,
        "waiting": waiting.as_dict(),
        "quarantined": waiting.quarantined,
        "other_services": _other_services(self),
        "legacy": _legacy(self),
    }


def _legacy(self: Tracker) -> dict[str, Any] | None:
    """What waits in a legacy store (from before per-service stores) in the cache
    directory, or None: ``pattern-track sync --url URL --adopt-legacy`` moves it."""
    from ..store.services import legacy_paths

    if not legacy_paths(self.config.resolved_cache_dir):
        return None  # three stat calls: the common case opens nothing
    from ..store.stores import legacy_waiting

    return legacy_waiting(self.config.resolved_cache_dir)


def _ended_journals(self: Tracker) -> int:
    """Events in journals of ended processes of this service that no drainer has
    moved yet (a full outbox takes them a part at a time)."""
    from ..store.orphans import unsettled_count

    return unsettled_count(self.config.service_dir, ended_only=True)


def _other_services(self: Tracker) -> dict[str, Any]:
    """Events waiting for other services in the same cache directory (never sent by
    this tracker): ``{base URL: {pending, spooled, journal, dead_letter}}``."""
    from ..store.services import known

    if len(known(self.config.resolved_cache_dir)) < 2:
        return {}  # a listdir and one small read: the common case opens no database
    from ..store.stores import elsewhere

    return elsewhere(self.config.resolved_cache_dir, self.config.service_dir)


def get_tracker_stats(self: Tracker) -> dict[str, Any]:
    """``stats()`` in the original library's shape, so existing dashboards keep working:
    ``{tracker: {enabled, base_url, cached_patterns}, resilience: {executor, health,
    circuit_breaker, cache}}``, counts of this process, ``last_check`` an ISO time.
    Never raises (zeros when ``stats()`` fails)."""
    s = self.stats()
    if "outcomes" not in s:  # stats() failed (it says why in "error"): zeros, not a KeyError
        s = {"accepted": 0, "sent": 0, "pending": None, "dead_letter": 0, "replayed": 0, "breaker": {},
             "health": {}, "outcomes": dict.fromkeys(("delivered", "outboxed", "dead_lettered", "buffered",
                                                      "in_flight"), 0)}
    o = s["outcomes"]
    attempted = o["delivered"] + o["outboxed"] + o["dead_lettered"]
    breaker = s["breaker"]
    state = breaker.get("state", "closed")
    return {
        "tracker": {"enabled": self.config.enabled, "base_url": self.config.base_url, "cached_patterns": 0},
        "resilience": {
            "executor": {
                "total_tasks": s["accepted"], "active_tasks": o["buffered"] + o["in_flight"],
                "success_count": s["sent"], "error_count": o["outboxed"] + s["dead_letter"],
                "success_rate": (o["delivered"] / attempted) if attempted else 0.0,
            },
            "health": {
                "is_healthy": s["health"].get("is_healthy", False),
                "last_check": s["health"].get("last_check"),
                "consecutive_failures": s["health"].get("consecutive_failures", 0),
                "consecutive_successes": 0 if not s["health"].get("is_healthy") else 1,
                "last_health_data": None, "base_url": self.config.base_url,
            },
            "circuit_breaker": {
                "state": state.replace("-", "_"), "failure_count": breaker.get("failure_count", 0),
                "consecutive_successes": 0, "last_failure_time": None, "last_success_time": None,
                "is_available": state != "open",
            },
            "cache": {
                "pending_events": s["pending"] or 0, "total_cached": o["outboxed"],
                "total_synced": s["replayed"], "cache_dir": self.config.resolved_cache_dir,
                "max_age_days": self.config.cache_max_age_days,
            },
        },
    }
