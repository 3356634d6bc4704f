"""The facade: ``Tracker`` and the process-wide ``get_tracker()``.

A tracker is built here (its journal, core, dispatcher and drainer) and started on its
first event; its public methods are functions of the tracking/ modules, bound in the
class body below, so ``help(Tracker)`` shows each with its own documentation. ``track()``
checks, serialises and journals an event on the caller's thread and never raises, waits
on the network or prints (tracking/recording.py). Threads start on the first event; the
network parts load only after ``linger_s`` (or a full batch), so a short process never
imports requests or diskcache. Exit, fork and the hand-off to a detached drainer live in
process/lifecycle.py and process/ending.py.
"""

from __future__ import annotations

import os
import threading

from . import logs
from .clock import Clock, as_seconds
from .config import Config, config_from_options
from .delivery.core import Core, Counters
from .delivery.dispatcher import Dispatcher
from .delivery.drainer import Drainer
from .process import ending, lifecycle
from .store import services
from .store.cachedir import check_directory
from .store.journal import Journal
from .tracking import lineage, maintenance, recording, report

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from typing_extensions import Unpack  # type checkers only: never imported at run time

    from .config import Options

__all__ = ["Tracker", "get_tracker"]

log = logs.get(__name__)

#: Kept alive in a forked child: closing a parent's SQLite handle there is unsafe.
_inherited: list[Core] = []


class Tracker:
    """Record pattern lineage events without ever getting in the caller's way.

    >>> with Tracker("http://localhost:8053", cache_dir="/tmp/pt-doc") as t:   # doctest: +SKIP
    ...     pid = t.track_pattern_creation("def f(): pass", {"language": "python"})

    Options are keyword-only and validated (``ConfigError`` names a bad one and suggests
    the closest name); see ``Config`` for all of them. ``Tracker()`` uses the code
    defaults; ``Tracker.from_env()`` and ``get_tracker()`` read the environment.
    """

    def __init__(self, base_url: str | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                 **options: Unpack[Options]) -> None:
        """Make a tracker; nothing starts until the first event.

        Raises ``ConfigError`` for an unknown option (naming the closest one) or a bad
        value, and ``CacheError`` for an unsafe ``cache_dir`` (a symlink, another user's).
        Every option is keyword-only; units are in the names (``_s`` seconds, ``_mb``
        megabytes); defaults in brackets:

        - ``base_url`` [``http://localhost:8053``]: the service; ``cache_dir`` [XDG cache
          ``pattern_track``]: one store per service inside it (journal, outbox, breaker,
          health; services.py), 0700; ``enabled`` [True].
        - Delivery: ``batch_size`` [100] events and ``batch_max_bytes`` [1,000,000] per
          request; ``max_workers`` [1] sender threads (one keeps order); ``linger_s``
          [0.25] before the network parts load; ``max_buffer_events`` [10,000] in memory
          (past it events wait in the journal alone); ``max_event_bytes`` [1 MiB].
        - Timeouts: ``connect_timeout_s`` [1], ``read_timeout_s`` [35] (the service's own
          bound is 30), ``request_deadline_s`` [40] per request; ``exit_timeout_s`` [0.5] for
          a request in flight at exit; ``health_check_timeout_s`` [1].
        - Resilience: ``breaker_failure_threshold`` [3] failed requests open the breaker for
          ``breaker_reset_timeout_s`` [60]; ``health_check_interval_s`` [30] caches health;
          ``backoff_base_s`` [1] to ``backoff_max_s`` [60]; ``drain_interval_s`` [1];
          ``max_attempts`` [8] for answers about one event; ``lease_ttl_s`` [60];
          ``shared_state`` [True] shares breaker and health between processes.
        - Durability: ``journal_fsync`` [False] survives power loss (~0.25 ms per event);
          ``handoff`` [True] starts a drainer at exit; ``cache_max_size_mb`` [50] caps the
          journal (refused past it, counted ``cache_full``) and with ``outbox_max_events``
          [1,000,000] each service's outbox (past it events wait in the journal);
          ``cache_max_age_days`` [7]
          for ``cleanup_cache()``; ``durable`` and ``handle_sigterm`` [False] have no effect.
        - Requests: ``api_key`` [None] as a bearer token; ``verify_tls`` [True];
          ``trust_env`` [False] proxies and ``.netrc``.
        - Events: ``before_send`` [None] ``callable(event) -> event or None`` to redact or
          drop; ``triggered_by`` [``pattern_track``].
        """
        config = config_from_options(base_url, cache_dir, options)
        if config.cache_dir is not None and config.enabled:
            # A path given in code that is unsafe is a configuration error: say so now.
            check_directory(config.cache_dir)
        self._setup(config, None)

    def _setup(self, config: Config, clock: Clock | None) -> None:
        self.config = config
        self._clock = clock or Clock()
        self._counters = Counters()
        # Re-entrant: track() may run in a signal handler inside track().
        self._lock = threading.RLock()
        self._closed = False
        self._close_done = threading.Event()
        service_dir = config.service_dir
        self._journal = Journal(service_dir, fsync=config.journal_fsync,
                                max_bytes=int(config.cache_max_size_mb * 1024 * 1024),
                                prepare=lambda: services.prepare(service_dir, config.base_url))
        self._journal_ok = True
        self._handed_off = False
        self._journal_left = False  # closed or exited with journal events unsettled
        self._drainer_started_at: float | None = None  # when we last started a detached drainer
        self._build()
        if config.enabled:
            # Even before its first event: at exit it hands off journals that processes
            # killed without an exit (pool workers after `with Pool`) left behind.
            lifecycle.register(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Tracker:
        """A tracker configured from environment variables (bad values warn and fall back).

        ``environ`` defaults to ``os.environ``; ``options`` win over it (see ``__init__``).
        Unlike the constructor it never raises for the environment's sake: a bad variable
        is logged and kept in ``stats()["config_warnings"]``, an unusable cache directory is
        logged and counted, and events are held as well as they can be. Misspelt or bad
        ``options`` raise ``ConfigError`` as in the constructor.
        """
        tracker = cls.__new__(cls)
        tracker._setup(Config.from_env(environ, **options), None)
        return tracker

    def _build(self) -> None:
        self._pid = os.getpid()
        self._started = False
        self._starting = False
        self._core = Core(self.config, self._clock, self._counters)
        ensure = (lambda: ending.cover(self)) if self.config.handoff else None
        self._drainer = Drainer(self._core, None, ensure_detached=ensure)
        self._dispatcher = Dispatcher(self._core, self._journal, on_backlog=self._drainer.end_linger)
        self._drainer.attach(self._dispatcher)
        self._spool = self._core.spool

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, threads and connections, a journal of its own;
        the parent keeps (and delivers) its own events."""
        _inherited.append(self._core)
        self._lock = threading.RLock()
        self._counters = Counters()
        self._journal.reinit_after_fork()
        self._handed_off = False
        self._journal_left = False
        self._drainer_started_at = None
        self._build()

    def _ensure_started(self) -> None:
        if self._started and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            if self._started or self._closed or self._starting:
                return  # _starting: a signal handler's track() inside this very start
            self._starting = True
            try:
                lifecycle.register(self)
                if lifecycle.exiting():
                    return  # no thread may start now (3.12.0-3.12.2); the journal and hand-off cover it
                try:
                    self._drainer.start()
                except RuntimeError:  # "can't create new thread at interpreter shutdown"
                    lifecycle.exit_began()
                    return
                self._started = True
            finally:
                self._starting = False

    # -- the public methods: each one lives in the tracking/ module named beside it --------

    track = recording.track  # tracking/recording.py
    track_pattern_creation = lineage.track_pattern_creation  # tracking/lineage.py
    track_pattern_modification = lineage.track_pattern_modification
    track_pattern_application = lineage.track_pattern_application
    track_pattern_merge = lineage.track_pattern_merge
    sync_offline_events = maintenance.sync_offline_events  # tracking/maintenance.py
    cleanup_cache = maintenance.cleanup_cache
    reset_circuit_breaker = maintenance.reset_circuit_breaker
    check_health = maintenance.check_health
    force_health_check = check_health  # the original library's name for check_health (an alias)
    stats = report.stats  # tracking/report.py
    get_tracker_stats = report.get_tracker_stats

    # -- delivery control -------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` s until every tracked event is delivered, in the outbox or
        dead-lettered (not only in memory or the journal); True if so. Never raises."""
        try:
            if not self._started:
                return True
            return self._dispatcher.flush(as_seconds(timeout, 5.0))
        except Exception:
            log.error("flush failed", exc_info=True)
            return False

    def close(self, timeout: float | None = None) -> None:
        """Deliver now for up to ``timeout`` s (default ``exit_timeout_s``; the linger is
        not waited out), then put what is left in the outbox, stop the threads and make
        sure a detached drainer delivers the rest (unless ``handoff=False``). Idempotent: a
        second call waits (up to its own ``timeout``) for the first to finish. Later
        ``track()`` calls are counted drops. A bad ``timeout`` is logged and the default
        used. Never raises."""
        ending.close(self, timeout)

    def _on_exit(self) -> None:
        """The interpreter is exiting (lifecycle's hook): hand off instead of flushing."""
        ending.at_exit(self)

    def _hand_off(self) -> None:
        self._handed_off = True
        ending.hand_off(self, after_pid=os.getpid())

    def __enter__(self) -> Tracker:
        """``with Tracker(...) as tracker:`` closes it at the end of the block."""
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """``close()``, with its default timeout; an exception of the block goes on."""
        self.close()


_default: Tracker | None = None
_default_lock = threading.Lock()


def get_tracker() -> Tracker:
    """The process-wide tracker: ``Tracker.from_env()`` on the first call, the same one after.
    Never raises for the environment's sake (see ``Tracker.from_env``)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Tracker.from_env()
    return _default
