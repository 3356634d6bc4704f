"""The circuit breaker: pybreaker's state machine over shared, monotonic state.

This is the only module that imports pybreaker. Three things differ from using
``pybreaker.CircuitBreaker.call()`` around the request:

- the request runs *outside* the breaker: pybreaker holds one lock for the whole guarded
  call, which would serialise every sender behind a hung request. ``allow()`` asks
  before sending, ``record()`` feeds the outcome in afterwards (a microsecond call);
- state lives in the shared cache through pybreaker's ``CircuitBreakerStorage`` seam, so
  when one process finds the service down the next hundred do not each pay a timeout;
- ``opened_at`` is kept in monotonic time and shown to pybreaker as a wall-clock
  datetime computed at read time, so wall-clock jumps cannot open or close it, and a
  ``FakeClock`` drives it in tests. Only one process at a time holds the half-open probe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pybreaker

from ..clock import Clock

__all__ = ["Breaker"]

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN


class _Failure(Exception):
    """Fed to pybreaker to count one failed delivery."""


def _fail() -> None:
    raise _Failure()


class _Storage(pybreaker.CircuitBreakerStorage):
    """pybreaker's storage seam over ``Outbox``/``MemoryState`` keys ``breaker:*``."""

    def __init__(self, store: Any, clock: Clock) -> None:
        super().__init__("pattern_track")
        self._store = store
        self._clock = clock

    @property
    def state(self) -> str:
        return self._store.get("breaker:state", CLOSED)

    @state.setter
    def state(self, state: str) -> None:
        self._store.set("breaker:state", state)

    def increment_counter(self) -> None:
        self._store.incr("breaker:failures")

    def reset_counter(self) -> None:
        self._store.set("breaker:failures", 0)

    def increment_success_counter(self) -> None:
        self._store.incr("breaker:successes")

    def reset_success_counter(self) -> None:
        self._store.set("breaker:successes", 0)

    @property
    def counter(self) -> int:
        return int(self._store.get("breaker:failures", 0))

    @property
    def success_counter(self) -> int:
        return int(self._store.get("breaker:successes", 0))

    @property
    def opened_at(self) -> datetime | None:
        elapsed = self.seconds_open()
        if elapsed is None:
            return None
        return datetime.now(timezone.utc) - timedelta(seconds=elapsed)

    @opened_at.setter
    def opened_at(self, _ignored: datetime) -> None:
        self._store.set("breaker:opened_monotonic", self._clock.monotonic())
        self._store.set("breaker:opened_wall", self._clock.time())

    def seconds_open(self) -> float | None:
        """Seconds since the breaker opened. An opening time ahead of this boot's monotonic
        clock was stored before a reboot (the clock restarts low): it counts as long ago,
        so a probe is due at once instead of after the old uptime."""
        opened = self._store.get("breaker:opened_monotonic")
        if opened is None:
            return None
        elapsed = self._clock.monotonic() - opened
        return elapsed if elapsed >= 0 else _BEFORE_THIS_BOOT_S


#: How long ago an opening stored before this boot is taken to be (any reset timeout is less).
_BEFORE_THIS_BOOT_S = 10.0**7


class _LogChanges(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        try:
            old = old_state.name if old_state else "?"
            level = logging.WARNING if new_state.name == OPEN else logging.INFO
            log.log(level, "circuit breaker %s -> %s", old, new_state.name)
        except Exception:  # a listener that raises would break the call
            pass


class Breaker:
    """Decides whether a delivery may be attempted and learns from each outcome."""

    def __init__(self, store: Any, *, failure_threshold: int, reset_timeout_s: float,
                 probe_ttl_s: float, owner: str, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._store = store
        self._storage = _Storage(store, self._clock)
        self._owner = owner
        self._probe_ttl_s = probe_ttl_s
        self._cb = pybreaker.CircuitBreaker(
            fail_max=failure_threshold, reset_timeout=reset_timeout_s,
            state_storage=self._storage, listeners=[_LogChanges()], name="pattern_track",
        )

    @property
    def state(self) -> str:
        return self._storage.state

    @property
    def failure_count(self) -> int:
        return self._storage.counter

    def allow(self) -> bool:
        """True when a request may be sent now: closed, or this caller holds the probe."""
        state = self._storage.state
        if state == CLOSED:
            return True
        if state == OPEN:
            elapsed = self._storage.seconds_open()
            if elapsed is not None and elapsed < self._cb.reset_timeout:
                return False
        # Open long enough, or half-open: one probe at a time across every process.
        return self._store.acquire_lease("breaker-probe", self._owner, self._probe_ttl_s)

    def seconds_until_probe(self) -> float:
        """How long until ``allow()`` may say yes (0 when closed or due)."""
        if self._storage.state != OPEN:
            return 0.0
        elapsed = self._storage.seconds_open() or 0.0
        return max(self._cb.reset_timeout - elapsed, 0.0)

    def record(self, ok: bool) -> None:
        """Count one request's outcome (True: the service stored something).

        A success closes the breaker for every process whatever its state: pybreaker
        records nothing while open (pitfalls.md), so that takes an explicit ``close()``.
        """
        state = self._storage.state
        if ok:
            if state == CLOSED and self._storage.counter == 0:
                return  # the common case: nothing to change, so no write to shared state
            if state == CLOSED:
                self._storage.reset_counter()
            else:
                self._cb.close()
            self._store.release_lease("breaker-probe", self._owner)
            return
        try:
            self._cb.call(_fail)
        except (_Failure, pybreaker.CircuitBreakerError):
            pass
        finally:
            if self._storage.state != HALF_OPEN:
                self._store.release_lease("breaker-probe", self._owner)

    def half_open(self) -> None:
        """Let one trial request through now, for every process: a probe found the service
        able to store again, so nobody waits out the rest of the reset timeout. The trial's
        answer closes the breaker for all (or opens it again)."""
        if self._storage.state == OPEN:
            self._cb.half_open()

    def reset(self) -> None:
        """Close the breaker and forget failures (``Tracker.reset_circuit_breaker``)."""
        self._cb.close()
        self._store.release_lease("breaker-probe", self._owner)

    def snapshot(self) -> dict:
        opened_wall = self._store.get("breaker:opened_wall")
        return {
            "state": self.state,
            "failure_count": self.failure_count,
            "failure_threshold": self._cb.fail_max,
            "reset_timeout_s": self._cb.reset_timeout,
            "opened_at": opened_wall if self.state != CLOSED else None,
            "seconds_until_probe": round(self.seconds_until_probe(), 3),
        }
