"""The sender threads: a bounded pool of daemon threads that run the dispatcher's pump.

Not a ``concurrent.futures.ThreadPoolExecutor``, on purpose. CPython joins an executor's
workers at interpreter exit (``threading._register_atexit``), before any ``atexit``
handler. A worker that waits for a lock the main thread took in ``track()`` then holds
exit for ever when a signal handler's exception (``sys.exit`` in a SIGTERM handler, as
gunicorn and many workers have) arrives between the lock's ``acquire`` and the ``with``
block that would release it (pitfalls.md: 12 hangs in 330 gunicorn-style runs on
3.11-3.13). Daemon threads are never joined: exit decides how long to wait for a request
in flight (``exit_timeout_s``) and the interpreter does not wait for more. Sentry's
transport worker is a daemon thread for the same reason.

``submit()`` is one ``SimpleQueue.put`` (a C call that takes no Python-level lock) plus,
the first ``max_workers`` times, starting a thread; idle senders block in
``SimpleQueue.get``. A forked child has no senders: its dispatcher makes new ones.
"""

from __future__ import annotations

import threading

try:
    from _queue import SimpleQueue  # the C queue itself: ``queue`` imports heapq and more
except ImportError:  # pragma: no cover - CPython always has _queue
    from queue import SimpleQueue

from .. import logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Senders"]

log = logs.get(__name__)

_STOP = object()


class Senders:
    """Run ``run()`` on up to ``max_workers`` daemon threads, once per ``submit()``."""

    def __init__(self, run: Callable[[], object], *, max_workers: int, name: str) -> None:
        self._run = run
        self._max_workers = max_workers
        self._name = name
        self._work: SimpleQueue = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()  # a C lock: its `with` has no window for a signal

    def submit(self) -> None:
        """Queue one run of ``run()``. Raises ``RuntimeError`` when no thread may start
        (CPython 3.12.0-3.12.2 refuse new threads once exit began)."""
        self._work.put(True)
        if len(self._threads) < self._max_workers:
            with self._starting:
                if len(self._threads) < self._max_workers:
                    thread = threading.Thread(target=self._loop, daemon=True,
                                              name=f"{self._name}-{len(self._threads)}")
                    thread.start()
                    self._threads.append(thread)

    def stop(self) -> None:
        """Let every idle sender end (a running one ends after its run); never waits."""
        for _ in self._threads:
            self._work.put(_STOP)

    def _loop(self) -> None:
        get = self._work.get
        while get() is not _STOP:
            try:
                self._run()
            except Exception:  # the run catches its own; this keeps the thread alive
                log.exception("unexpected error in a sender thread")
