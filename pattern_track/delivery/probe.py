"""Is the service back? Cheap probes while the breaker is open, so recovery takes seconds.

The breaker's reset timeout (60 s by default) is how long a *track* request waits after
failures; the health route and the read route are cheap and not rate-limited on the real
service (wire-contract.md), so while the breaker is open the drainer asks them every few
seconds instead (``PROBE_MIN_S`` doubling to ``PROBE_MAX_S``, jittered, one probe at a time
for every process of the user: the ``health-probe`` lease). What a probe finds:

- ``ready``: health healthy and the read route answering (200, or 404 for an unknown
  pattern: the database answered a query). The breaker goes half-open for every process:
  the next batch is the trial, and its answer closes the breaker for all.
- ``degraded``: health answers but says the lineage database was never reached. Only a
  track request makes the real service create its pool, so a trial goes every
  ``DEGRADED_TRIAL_S`` (not every reset timeout).
- ``db_down``: health healthy (it says so while the database is down) but the read route
  fails (5xx): no trial; health is advice, so the breaker's own reset timeout still lets
  one through.
- ``down``: no answer at all (refused, reset, timed out): wait for the next probe.
"""

from __future__ import annotations

import os

from .. import logs
from .backoff import Backoff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEGRADED_TRIAL_S", "PROBE_MAX_S", "PROBE_MIN_S", "Prober"]

log = logs.get(__name__)

PROBE_MIN_S = 1.0
#: The longest gap between probes: what waits arrives within this (plus a request) of the
#: service being able to store again.
PROBE_MAX_S = 5.0
#: How often a trial track request goes while health says degraded.
DEGRADED_TRIAL_S = 8.0
#: The pattern the read route is asked about: any id will do (404 proves the query ran).
PROBE_PATTERN_ID = "pattern-track-probe"


class Prober:
    """Probes for one tracker's core (health, transport, breaker, shared store)."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._backoff = Backoff(PROBE_MIN_S, PROBE_MAX_S)
        self.last_verdict: str | None = None

    def step(self) -> float | None:
        """Probe if it is this process's turn: None when a delivery is worth trying now
        (the breaker, if open, was half-opened: the delivery is the trial), else the
        seconds until the next probe is due."""
        core = self._core
        delay = self._backoff.next()
        owner = "probe-" + os.urandom(6).hex()  # never a live pid: the lease lasts its TTL
        if not core.store.acquire_lease("health-probe", owner, max(delay, PROBE_MIN_S / 2)):
            return delay  # another process probes this period
        verdict = self.last_verdict = self.verdict()
        if verdict == "ready" or (verdict == "degraded" and core.store.acquire_lease(
                "degraded-trial", owner, DEGRADED_TRIAL_S)):
            log.info("service probe: %s; letting one trial delivery through", verdict)
            core.breaker.half_open()
            self._backoff.reset()
            return None
        return delay

    def verdict(self) -> str:
        """``ready``, ``degraded``, ``db_down`` or ``down`` (see the module docstring)."""
        core = self._core
        if not core.health.check(teach_breaker=False):
            return "degraded" if core.health.answered() else "down"
        from .readback import ReadUnknown, evolution

        try:
            evolution(core.transport.get, PROBE_PATTERN_ID, timeout_s=core.config.health_check_timeout_s)
        except ReadUnknown as exc:
            # A service without the route cannot say: let the trial delivery say instead.
            return "ready" if exc.reason == "no_route" else "db_down"
        return "ready"  # the query ran: stored or not, the database answered
