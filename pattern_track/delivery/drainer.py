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
Being a daemon, it never holds the interpreter at exit.
"""

from __future__ import annotations

import os
import threading
import time
TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from .. import logs
from .backoff import Backoff
from ..errors import OutboxError
from ..store import inventory
from ..store.orphans import adopt_orphans, orphans_waiting

__all__ = ["Drainer"]

log = logs.get(__name__)

LEASE = "drain"


class Drainer:
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

    def ingest(self, timeout_s: float | None = 0.0) -> int:
        """Move spool files and the journals of dead processes into the outbox, under the
        drain lease (so each moves once, and after what is already there). If another
        thread of this process is draining, wait at most ``timeout_s`` (then move
        nothing: its next step does it)."""
        core = self._core
        cache_dir = core.config.service_dir
        if core.outbox is None or not (self.spool.files() or orphans_waiting(cache_dir)):
            return 0
        if not self._take_turn(timeout_s):
            return 0
        try:
            with self.moving:
                if not core.outbox.acquire_lease(LEASE, core.owner, core.config.lease_ttl_s):
                    return 0
                try:
                    size = core.config.batch_size

                    def append(events: list) -> int:
                        return core.outbox.append_chunks(events, chunk_size=size)

                    def in_doubt(ids: list) -> None:  # the writer's request was cut: ask before resending
                        from ..store import doubt

                        doubt.add(core.outbox, ids)

                    moved = adopt_orphans(cache_dir, append, in_doubt) + self.spool.ingest(append)
                finally:
                    core.outbox.release_lease(LEASE, core.owner)
        finally:
            self._end_turn()
        if moved:
            core.counters.add("adopted", moved)
        return moved

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

    def drain(self, *, probe: bool = False, max_chunks: int | None = None, timeout_s: float | None = None) -> dict:
        """Deliver the outbox from the front until it is empty, a delivery fails, or
        ``timeout_s`` passes (a request in flight then is cut: ours, not the service's
        failure; its events stay in the outbox).

        ``probe`` lets an explicit sync try once even while the breaker is open.
        Returns ``{state, synced, failed, skipped, retry_after_s}``; ``state`` is
        ``done``, ``busy`` (another drain holds the lease), ``breaker_open``,
        ``rate_limited`` (a shared Retry-After wait runs), ``retry_later``, ``timeout`` or
        ``unavailable``.
        """
        core = self._core
        config = core.config
        outbox = core.outbox
        result = {"state": "done", "synced": 0, "failed": 0, "skipped": 0, "retry_after_s": None}
        if outbox is None or core.delivery is None:
            result["state"] = "unavailable"
            return result
        wait = core.not_before_s()
        if wait > 0:  # the service asked every process to wait (Retry-After): probes too
            result.update(state="rate_limited", retry_after_s=wait, failed=outbox.pending())
            return result
        deadline = None if timeout_s is None else core.clock.monotonic() + timeout_s
        if not self._take_turn(None if timeout_s is None else max(timeout_s, 0.0)):
            result["state"] = "busy"  # another thread of this process is draining
            return result
        try:
            if not outbox.acquire_lease(LEASE, core.owner, config.lease_ttl_s):
                result["state"] = "busy"
                return result
            until = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
            try:
                with core.transport.bounded(until):  # a request in flight ends by the deadline too
                    self._drain_leased(result, probe, max_chunks, deadline)
            except OutboxError as exc:
                log.warning("outbox unavailable while draining: %s", exc)
                result["state"] = "unavailable"
            finally:
                try:
                    outbox.release_lease(LEASE, core.owner)
                except OutboxError:
                    pass
        finally:
            self._end_turn()
        return result

    def _pace_gate(self) -> float:
        """Seconds this machine must still wait before a rate-limited request (0: go).
        Under pressure a fresh health answer (not limited) must show room in the window
        first; after a window without room the request goes anyway (pacing.py)."""
        core = self._core
        pacer = core.pacer
        if pacer is None:
            return 0.0
        wait = pacer.wait_s()
        if wait > 0:
            return wait
        if not pacer.needs_room():
            if pacer.under_pressure():
                pacer.went()
            return 0.0
        ask_in = pacer.ask_in_s()
        if ask_in > 0:
            return ask_in  # another step (of any process of the machine) asked just now
        core.health.check(teach_breaker=False)  # its rate window reaches the pacer
        if not pacer.needs_room():
            pacer.went()
            return 0.0
        return pacer.note_waiting()

    def _drain_leased(self, result: dict, probe: bool, max_chunks: int | None, deadline: float | None) -> None:
        """``drain()``'s loop, with the lease held; fills ``result``."""
        core = self._core
        config = core.config
        outbox = core.outbox
        chunks_done = 0
        renewed = core.clock.monotonic()

        def stop(state: str) -> None:
            result["state"] = state
            result["failed"] = outbox.pending()

        while not self._stop.is_set() and (max_chunks is None or chunks_done < max_chunks):
            if deadline is not None and core.clock.monotonic() >= deadline:
                return stop("timeout")
            chunks = outbox.front_chunks(config.batch_size)
            if not chunks:
                return None
            if not (core.breaker.allow() or probe):
                return stop("breaker_open")
            pace = 0.0 if probe else self._pace_gate()  # an explicit sync tries once now
            if pace > 0:
                stop("rate_limited")
                result["retry_after_s"] = pace
                return None
            probe = False
            chunks_done += len(chunks)
            now = core.clock.monotonic()
            if now - renewed >= config.lease_ttl_s / 4:  # renew well before expiry, not per batch
                outbox.acquire_lease(LEASE, core.owner, config.lease_ttl_s)
                renewed = now
            settled = self._deliver(chunks)
            core.counters.add("replayed", settled.sent)
            result["synced"] += settled.sent
            result["skipped"] += len(settled.dead)
            if deadline is not None and core.clock.monotonic() >= deadline:
                return stop("timeout")
            if settled.keep:
                stop("retry_later")
                result["retry_after_s"] = settled.retry_after_s
                log.info("outbox delivery paused (%s); %d events wait", settled.reason, result["failed"])
                return None
        return None
