"""Maintenance calls of a tracker: sync now, clean up, reset the breaker, check health.

Each function here is a method of ``Tracker`` (tracker.py binds it, hence the first
parameter, ``self``). Each is bounded and never raises: failures come back in the
result (``{"success": False, "error": ...}``) and in the logs.
"""

from __future__ import annotations

from .. import logs
from ..clock import as_seconds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..store.outbox import Outbox
    from ..tracker import Tracker

__all__ = ["check_health", "cleanup_cache", "reset_circuit_breaker", "sync_offline_events"]

log = logs.get("pattern_track.maintenance")  # its name from before it moved into tracking/


def _wait_ready(self: Tracker, timeout_s: float = 5.0) -> bool:
    self._ensure_started()
    return self._core.ready.wait(timeout_s)


def sync_offline_events(self: Tracker, timeout: float = 30.0) -> dict[str, Any]:
    """Deliver the outbox now, on this thread, for at most ``timeout`` seconds: a request
    still in flight then is cut (our cut, never counted against the service; its events
    stay in the outbox). Health is reported, not obeyed: one probe goes even while it
    says no. Never raises.

    Returns ``{success, state, sync_stats: {total_found, synced, failed, skipped,
    parked}}``: ``synced`` and ``skipped`` (dead-lettered) by this call, ``failed`` the
    events of this service still waiting anywhere (``parked`` among them), and
    ``total_found`` their sum.
    """
    try:
        if not self.config.enabled:
            return {"success": False, "reason": "tracking_disabled", "sync_stats": _empty_sync()}
        deadline = self._clock.monotonic() + as_seconds(timeout, 30.0)

        def left() -> float:
            return max(deadline - self._clock.monotonic(), 0.0)

        # Counted for the whole process: this process's drainer thread may deliver some of
        # the same events meanwhile (the drain lease lets one of them at a time).
        values = self._counters.values
        before = (values["replayed"], values["replay_dead_lettered"])
        if not _wait_ready(self, left()):
            return {"success": False, "reason": "not_ready", "sync_stats": _empty_sync()}
        self._dispatcher.flush(min(left(), 5.0))
        core = self._core
        outbox = core.outbox  # once open, the same outbox for the tracker's life
        if outbox is None:
            return {"success": False, "reason": "outbox_unavailable", "error": core.outbox_error,
                    "sync_stats": _empty_sync()}
        result = _sync_rounds(self, outbox, left)
        synced, skipped = values["replayed"] - before[0], values["replay_dead_lettered"] - before[1]
        parked = len(outbox.parked())
        waiting = _waiting(self, outbox)  # parked events included
        stats = {"total_found": synced + skipped + waiting, "synced": synced, "failed": waiting,
                 "skipped": skipped, "parked": parked}
        return {"success": result["state"] == "done" and not waiting, "state": result["state"],
                "healthy": core.health.is_healthy(), "sync_stats": stats}
    except Exception as exc:
        log.error("sync failed", exc_info=True)
        return {"success": False, "error": f"{type(exc).__name__}: {exc}", "sync_stats": _empty_sync()}


def _sync_rounds(self: Tracker, outbox: Outbox, left: Callable[[], float]) -> dict[str, Any]:
    """Ingest, then drain, again while the process makes progress: a full outbox takes
    the spool, ended processes' journals and this process's waiting events a part at a
    time. Returns the last drain's result."""
    drainer = self._drainer
    values = self._counters.values
    probe = True
    while True:
        done_before = values["replayed"] + values["replay_dead_lettered"] + values["adopted"]
        drainer.ingest(timeout_s=left())
        result = drainer.drain(probe=probe, timeout_s=left())
        probe = False
        if result["state"] not in ("done", "busy") or left() <= 0:
            return result
        self._dispatcher.kick()  # room was freed: events of ours waiting for it move now
        waiting = self._dispatcher.flush(min(left(), 1.0)) is False
        progress = values["replayed"] + values["replay_dead_lettered"] + values["adopted"] > done_before
        if not (waiting or drainer.has_work() or outbox.pending()):
            drainer.retry_parked()  # those due now; the rest keep their own schedule
            return result
        if not progress and result["state"] != "busy":
            return result  # nothing moved and nobody else is moving it
        if result["state"] == "busy":  # another process holds the drain lease: let it work
            self._clock.wait(self._close_done, min(left(), 0.1))


def _waiting(self: Tracker, outbox: Outbox) -> int:
    """Events of this service still waiting: outbox (parked ones too), spool, journals
    of ended processes, and this process's events held back by a full outbox."""
    from ..store.orphans import unsettled_count

    memory = self._dispatcher.counts()
    return (outbox.pending() + self._spool.count_events()
            + unsettled_count(self.config.service_dir, ended_only=True)
            + memory["buffered"] + memory["journal_only"])


def cleanup_cache(self: Tracker, max_age_days: float | None = None) -> dict[str, Any]:
    """Remove outbox entries and dead letters older than ``max_age_days`` days (default
    ``cache_max_age_days``, 7); undelivered events removed are counted as ``expired``.

    Returns ``{success, cleaned_count, expired_events, expired_dead_letters}``, or
    ``{success: False, reason}`` (``not_ready``, ``outbox_unavailable``) or
    ``{success: False, error}``. Waits up to 5 s for the outbox to open. Never raises.
    """
    try:
        if not _wait_ready(self):
            return {"success": False, "reason": "not_ready"}
        if self._core.outbox is None:
            return {"success": False, "reason": "outbox_unavailable"}
        days = self.config.cache_max_age_days if max_age_days is None else max_age_days
        counts = self._core.outbox.cleanup(days * 86400.0)
        if counts["expired_events"]:
            self._counters.drop("expired", counts["expired_events"])
            log.warning("cleanup removed %d undelivered events older than %s days",
                        counts["expired_events"], days)
        return {"success": True, "cleaned_count": sum(counts.values()), **counts}
    except Exception as exc:
        log.error("cleanup failed", exc_info=True)
        return {"success": False, "error": f"{type(exc).__name__}: {exc}"}


def reset_circuit_breaker(self: Tracker) -> bool:
    """Close the breaker and drop the shared Retry-After wait (both shared by every
    process using this service's store): an operator's "start afresh". True if done,
    False if the network parts could not be loaded within 5 s. Never raises."""
    try:
        if _wait_ready(self) and self._core.breaker is not None:
            self._core.breaker.reset()
            self._core.store.set("not_before", 0.0)
            return True
    except Exception:
        log.error("breaker reset failed", exc_info=True)
    return False


def check_health(self: Tracker) -> bool:
    """Ask the service now, ignoring the cached answer; True if it is healthy.

    Bounded by ``health_check_timeout_s`` (after up to 5 s for the network parts to load);
    the answer is recorded for every process (``stats()["health"]``). False too when no
    answer came or the check failed. Never raises. ``force_health_check()`` is the same
    method under the original library's name.
    """
    try:
        return bool(_wait_ready(self) and self._core.health.check())
    except Exception:
        log.error("health check failed", exc_info=True)
        return False


def _empty_sync() -> dict[str, int]:
    return {"total_found": 0, "synced": 0, "failed": 0, "skipped": 0}
