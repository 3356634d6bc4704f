"""The outbox drainer: one daemon thread per tracker, one drain lease per machine.

It waits ``linger_s`` after the first event (a process that ends sooner never loads
requests or diskcache: a detached drainer delivers its journal), then opens the outbox
and builds the network parts (``Core.start``), starts the sender, then loops
``while not clock.wait(stop, delay): delay = step()``. A step delivers the outbox in order
when the breaker allows and health is good, holding the shared ``drain`` lease so two
processes never send the same events at once, and deleting a chunk only after the service
acknowledged it. A drainer killed at any instant loses nothing: its lease expires and the
unacknowledged chunk is sent again (at-least-once; events carry a stable id). Each step
also moves spool files and the journals of dead processes into the outbox.
Being a daemon, it never holds the interpreter at exit. ``drain()`` and ``ingest()``, the
work of a step, are in draining.py.
"""

from __future__ import annotations

import os
import threading

from .. import logs
from ..store import inventory
from .backoff import Backoff
from .draining import Draining

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Drainer"]

log = logs.get(__name__)


class Drainer(Draining):
    def __init__(self, core: Any, dispatcher: Any, *, ensure_detached: Any = None) -> None:
        self._core = core
        self._dispatcher = dispatcher
        #: Called from this thread when this process has events only its journal holds: it
        #: makes sure a detached drainer runs (a SIGKILL now would otherwise leave them to
        #: whichever process of ours runs next). None: never (``handoff=False``, the CLI).
        self._ensure_detached = ensure_detached
        self._prober: Any = None
        self._linger = threading.Event()  # set: stop lingering (a full batch, or stop())
        self._journaled = threading.Event()  # set: the process's first event is in its journal
        #: Set once the journal is covered (a detached drainer made sure of) or need not be.
        self.covered = threading.Event()
        config = core.config
        self._backoff = Backoff(config.backoff_base_s, config.backoff_max_s)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and by wake()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        # One ingest or drain at a time within this process (they share the process's
        # lease). A flag, not a lock held across network I/O: others wait on the
        # condition with a bound, or are told "busy".
        self._turn = threading.Condition(threading.Lock())
        self._busy = False
        self._replay: Any = None  # replay.py, loaded with the send path
        # Held only while events move from the spool or a journal into the outbox (no
        # network I/O): stats() takes it to read both sides as one snapshot.
        self.moving = threading.Lock()
        self.spool = core.spool

    def attach(self, dispatcher: Any) -> None:
        self._dispatcher = dispatcher

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pattern_track-drainer", daemon=True)
        self._thread.start()

    def journaled(self) -> None:
        """The process's first event is in its journal: cover it now (see ``_run``)."""
        self._journaled.set()

    def end_linger(self) -> None:
        """A full batch waits: load the network parts now."""
        self._linger.set()

    def stop(self, timeout_s: float) -> None:
        """Ask the loop to end and wait (bounded) for it to release its lease."""
        self._stop.set()
        self._wake.set()
        self._linger.set()
        self._journaled.set()
        if timeout_s > 0 and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        core = self._core
        started = core.clock.monotonic()
        # Before the linger: a process SIGKILLed right after its first track() is covered.
        if self._journaled.wait(core.config.linger_s):
            self._cover_the_journal()
        self.covered.set()
        self._linger.wait(max(core.config.linger_s - (core.clock.monotonic() - started), 0.0))
        if self._stop.is_set():
            return  # the process ended first: its journal goes to a detached drainer
        core.start()
        if self._stop.is_set():
            return
        self._dispatcher.kick()
        delay = 0.0
        while True:
            core.clock.wait(self._wake, delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                delay = self.step()
                self._cover_the_journal()
            except Exception:
                log.exception("drainer step failed")
                delay = self._backoff.next()

    def _cover_the_journal(self) -> None:
        if self._ensure_detached is not None and self._dispatcher.unsettled():
            try:
                self._ensure_detached()
            except Exception:  # never let the cover stop the drainer
                log.warning("could not make sure a detached drainer runs", exc_info=True)

    def wake(self) -> None:
        """Run a step now (new durable events are waiting)."""
        self._wake.set()

    def _take_turn(self, timeout_s: float | None) -> bool:
        """Become this process's one drainer or ingester; wait at most ``timeout_s``
        (None: as long as it takes) for another thread's turn to end. True if taken."""
        with self._turn:
            if not self._turn.wait_for(lambda: not self._busy, timeout_s):
                return False
            self._busy = True
            return True

    def _end_turn(self) -> None:
        with self._turn:
            self._busy = False
            self._turn.notify_all()

    def step(self) -> float:
        """One pass; returns the seconds to wait before the next."""
        core = self._core
        config = core.config
        self._dispatcher.retry_held()
        if core.outbox is None or core.delivery is None:
            return config.drain_interval_s
        self._dispatcher.kick()  # events waiting for room in a full outbox, or for the service
        self.ingest()
        if core.outbox.pending() == 0:
            self._backoff.reset()
            return config.drain_interval_s
        wait = core.wait_s()
        if wait > 0 and core.not_before_s() > 0:
            return wait  # the service asked every process to wait: no request at all
        if wait > 0 or not core.health.is_healthy():
            # The breaker is open or health says no: ask health and the read route (cheap,
            # not rate-limited) every few seconds instead of waiting out the reset timeout
            # or the health cache (probe.py); they say when a delivery is worth trying.
            probe_wait = self.prober().step()
            if probe_wait is not None and wait > 0:
                return min(probe_wait, wait)
            if probe_wait is not None and not core.health_allows():
                # Health is advice, never a wall: one delivery per breaker reset timeout
                # still goes (for every process), as only a request refills the pool.
                return probe_wait
        result = self.drain()
        if result["state"] == "busy":
            return config.drain_interval_s
        if result["state"] == "rate_limited":
            return result["retry_after_s"] or config.drain_interval_s  # the pace says when
        if result["failed"]:
            return max(self._backoff.next(result.get("retry_after_s")), core.pace_s())
        self._backoff.reset()
        parked_wait = self.retry_parked()
        if result["synced"] or result["skipped"]:
            return 0.0
        return config.drain_interval_s if parked_wait is None else min(parked_wait, config.drain_interval_s * 10)

    def waiting(self) -> Any:
        """What waits in this service's store, by place (store/inventory.py)."""
        return inventory.take(self._core.config.service_dir, self._core.outbox)

    def has_work(self) -> bool:
        """Must a drainer stay up? Anything undelivered, or a live journal holding events."""
        return self.waiting().keeps_a_drainer()

    def run_until_idle(self, *, idle_s: float, max_s: float | None = None) -> bool:
        """Drain on this thread while anything waits, then ``idle_s`` more; or until
        ``max_s`` (None: no bound) passes, or the store is removed.

        For the detached drainer process: during an outage of any length it sleeps on the
        breaker's, the probes' and the backoff's schedule. Returns whether everything was
        delivered.
        """
        core = self._core
        clock = core.clock
        start = idle_since = clock.monotonic()
        while max_s is None or clock.monotonic() - start < max_s:
            if not os.path.isdir(core.config.service_dir):
                log.info("the store was removed; the drainer ends")
                return True
            delay = self.step()
            now = clock.monotonic()
            if self.has_work():
                idle_since = now
            elif now - idle_since >= idle_s:
                return True
            if clock.wait(self._stop, min(delay, max(idle_s / 4, 0.05))):
                break
        return not self.has_work()

    def prober(self) -> Any:
        """The probes used while the breaker is open (probe.py), made on first use."""
        if self._prober is None:
            from .probe import Prober

            self._prober = Prober(self._core)
        return self._prober

    def replay(self) -> Any:
        """The outbox replayer (replay.py), made on first use with the send path."""
        if self._replay is None:
            from .replay import Replay

            self._replay = Replay(self._core, self._dispatcher.dead_letter)
        return self._replay

    def _deliver(self, chunks: list) -> Any:
        return self.replay().deliver(chunks)

    def retry_parked(self) -> float | None:
        """Retry the parked events that are due; returns seconds until the next is due."""
        return self.replay().retry_parked()
