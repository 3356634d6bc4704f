"""The parts one tracker's engines share, built in the background.

Opening the outbox can wait on another process's write lock, and importing requests costs
~250 ms: neither may happen on the caller's thread. ``Core.start()`` is run by the drainer
thread: it opens the outbox (``outbox_ready``), then builds transport, breaker, health and
delivery (``ready``). Until then ``track()`` only appends to memory.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading

from .. import logs
from ..clock import Clock
from ..config import Config
from ..errors import OutboxError
from ..store.spool import Spool
from ..store.state import MemoryState

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

    from ..store.outbox import Outbox

__all__ = ["Core", "Counters"]

log = logs.get(__name__)


def _import_everything_the_threads_use() -> None:
    """Every import the background threads would otherwise make lazily, done now under
    ``forksafe.guard`` (which fork() waits for): a child forked while a thread of ours held
    a module's import lock would block for good on its first import of it."""
    import datetime  # noqa: F401  health snapshots, HTTP dates
    import email.utils  # noqa: F401  Retry-After as an HTTP date

    from . import batches, breaker, health, parking, probe, readback, replay, senders, settle, transport  # noqa: F401

    "localhost".encode("idna")  # socket encodes host names with it: imports encodings.idna


class Counters:
    """This process's outcome counts; every accepted event lands in exactly one.

    Each increment is one C call (``Counter.update`` over an iterable counts in
    ``_count_elements``): a signal handler that tracks runs between bytecodes of the very
    thread it interrupts, where a lock cannot help, and a Python-level read-modify-write
    (``d[k] = d.get(k, 0) + n``) would lose its count.
    """

    FIELDS = ("accepted", "delivered", "outboxed", "dead_lettered", "dropped_after_accept",
              "replayed", "replay_dead_lettered", "adopted")

    def __init__(self) -> None:
        self._lock = threading.RLock()  # readers take it to copy a consistent snapshot
        self.values = collections.Counter(dict.fromkeys(self.FIELDS, 0))
        self.dropped: collections.Counter = collections.Counter()
        self.conditions: collections.Counter = collections.Counter()  # things that happened to the process

    def note(self, condition: str, n: int = 1) -> None:
        if n > 0:
            self.conditions.update(itertools.repeat(condition, n))

    def add(self, name: str, n: int = 1) -> None:
        if n > 0:
            self.values.update(itertools.repeat(name, n))

    def drop(self, reason: str, n: int = 1, *, accepted: bool = False) -> None:
        if n > 0:
            self.dropped.update(itertools.repeat(reason, n))
            if accepted:
                self.values.update(itertools.repeat("dropped_after_accept", n))


class Core:
    def __init__(self, config: Config, clock: Clock, counters: Counters) -> None:
        self.config = config
        self.clock = clock
        self.counters = counters
        self.owner = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self.outbox: Outbox | None = None  # opened once, by open_outbox()
        # The outbox's stdlib front door, checked as safe as the outbox before each write.
        self.spool = Spool(config.service_dir, prepare=self._prepare_store)
        self.store: Any = MemoryState()
        self.transport: Any = None
        self.breaker: Any = None
        self.health: Any = None
        self.delivery: Any = None
        self.pacer: Any = None
        self.outbox_error: str | None = None
        self.outbox_ready = threading.Event()
        self._opening = threading.Lock()
        self.ready = threading.Event()

    def start(self, *, network: bool = True) -> None:
        """Open the outbox, then the network parts. Never raises."""
        try:
            from ..store import forksafe

            # Imports on a background thread: fork() waits for them (forksafe.py).
            with forksafe.guard:
                # Before any module that logs through logging directly is imported: without
                # the package's NullHandler a warning would reach stderr (logging.lastResort).
                logs.attach_null_handler()
                from ..store import outbox  # noqa: F401  diskcache, sqlite3
                if network:
                    _import_everything_the_threads_use()
        except Exception:
            log.exception("pattern_track could not import its delivery parts")
        self.open_outbox()
        if not network:
            return
        try:
            self._build_network()
        except Exception:
            log.exception("pattern_track could not start its delivery parts")
        finally:
            self.ready.set()

    def open_outbox(self) -> None:
        """Open the outbox once (from the background thread, or from ``stats()`` when it is
        asked before any event); never raises."""
        with self._opening:
            if self.outbox_ready.is_set():
                return
            try:
                self._open_outbox()
            finally:
                self.outbox_ready.set()

    def _open_outbox(self) -> None:
        c = self.config
        try:
            try:
                self.outbox = self._outbox()
            except OutboxError as exc:
                import sqlite3

                cause = exc.__cause__
                if not isinstance(cause, sqlite3.DatabaseError) or isinstance(cause, sqlite3.OperationalError):
                    raise
                from ..store.quarantine import quarantine

                # A corrupt database: keep it aside for inspection, start a fresh one
                # (unless another process did both already).
                aside = quarantine(c.service_dir)
                if aside is not None:
                    log.error("outbox database corrupt (%s); moved to %s, starting a new one", exc, aside)
                self.counters.note("outbox_quarantined")
                self.outbox = self._outbox()
        except Exception as exc:
            self.outbox_error = f"{type(exc).__name__}: {exc}"
            log.error("outbox unavailable, holding events in memory: %s", self.outbox_error)
            self.counters.note("outbox_unavailable")
            return
        if c.shared_state:
            self.store = self.outbox

    def _prepare_store(self) -> str:
        from ..store.services import prepare

        return prepare(self.config.service_dir, self.config.base_url)

    def _outbox(self) -> Outbox:
        from ..store.outbox import Outbox  # imports diskcache

        c = self.config
        from ..store.services import prepare

        return Outbox(prepare(c.service_dir, c.base_url), max_events=c.outbox_max_events,
                      max_bytes=int(c.cache_max_size_mb * 1024 * 1024))

    def _build_network(self) -> None:
        from .batches import Delivery
        from .breaker import Breaker
        from .health import Health
        from .pacing import Pacer
        from .transport import BATCH_PATH, HEALTH_PATH, TRACK_PATH, Transport

        c = self.config
        self.transport = Transport(c)
        self.pacer = Pacer(self.store, self.clock)
        self.breaker = Breaker(self.store, failure_threshold=c.breaker_failure_threshold,
                               reset_timeout_s=c.breaker_reset_timeout_s,
                               probe_ttl_s=c.request_deadline_s + 1.0, owner=self.owner, clock=self.clock)
        self.health = Health(self.transport.get, self.store, path=HEALTH_PATH,
                             interval_s=c.health_check_interval_s, timeout_s=c.health_check_timeout_s,
                             clock=self.clock, on_result=self.breaker.record, on_answer=self.pacer.health)
        self.delivery = Delivery(self.transport, self.breaker, track_path=TRACK_PATH, batch_path=BATCH_PATH,
                                 batch_max_bytes=c.batch_max_bytes, health=self.health,
                                 on_retry_after=self.set_not_before, pacer=self.pacer)

    # -- when to send: the breaker decides, Retry-After delays, health only advises ----------

    def set_not_before(self, seconds: float) -> None:
        """Honour a ``Retry-After`` in every process: no request before ``seconds`` from now."""
        from .outcome import RETRY_AFTER_MAX_S

        until = self.clock.monotonic() + min(max(seconds, 0.0), RETRY_AFTER_MAX_S)
        try:
            if until > (self.store.get("not_before") or 0.0):
                self.store.set("not_before", until)
        except Exception as exc:
            log.warning("cannot record Retry-After: %s", type(exc).__name__)

    def not_before_s(self) -> float:
        """Seconds left of the shared Retry-After wait (0: none). A stored value further
        away than the cap cannot be ours (another boot's clock) and is ignored."""
        from .outcome import RETRY_AFTER_MAX_S

        left = (self.store.get("not_before") or 0.0) - self.clock.monotonic()
        return left if 0.0 < left <= RETRY_AFTER_MAX_S else 0.0

    def wait_s(self) -> float:
        """Seconds before any request may go out: the breaker's open time or Retry-After."""
        return max(self.breaker.seconds_until_probe(), self.not_before_s())

    def pace_s(self) -> float:
        """Seconds before a rate-limited request may go by this machine's pacing (pacing.py:
        its backoff after a 429 and its gap between requests); 0: now."""
        return self.pacer.wait_s() if self.pacer is not None else 0.0

    def health_allows(self) -> bool:
        """Health is advice: when it says no, one probe per breaker reset timeout still goes
        (across every process), because only a request refills the service's pool."""
        if self.health.is_healthy():
            return True
        owner = "probe-" + os.urandom(6).hex()  # never a live pid: held until it expires
        return self.store.acquire_lease("unhealthy-probe", owner, self.config.breaker_reset_timeout_s)

    def may_send(self) -> bool:
        """Send now? When ready, no wait is due, health allows and the breaker allows.
        Under rate pressure fresh events are kept for the drainer, which sends them in full
        batches at the machine's pace (pacing.py)."""
        if not self.ready.is_set() or self.delivery is None:
            return False
        try:
            if self.wait_s() > 0:
                return False  # open or told to wait: no request at all, not even a health check
            if self.pacer is not None and (self.pacer.wait_s() > 0 or self.pacer.under_pressure()):
                return False
            return self.health_allows() and self.breaker.allow()
        except Exception as exc:  # shared state unreadable: be careful, keep events
            log.warning("cannot read breaker/health state: %s", type(exc).__name__)
            return False
