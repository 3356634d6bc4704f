"""Whole-request deadlines and abort for one transport's connections (standard library only).

requests' read timeout is per socket read, so a server trickling a byte a second keeps a
request alive for ever; and at interpreter exit CPython joins the sender threads before
``atexit`` runs, so a request in flight would hold the process for its whole timeout.
``Deadlines`` answers both by shutting sockets down: a watchdog thread does it at each
request's deadline, ``abort()`` does it to every socket in use at once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

__all__ = ["Deadlines"]

#: transport.py's logger, as before these lines moved here: a filter on it still sees the cuts.
log = logging.getLogger("pattern_track.delivery.transport")


class Deadlines:
    """The deadlines of the requests in flight, by thread, and the channels they use.

    A channel is anything with ``shutdown_sockets()`` (transport.py's per-thread session).
    ``watchdog=False`` starts no thread: deadlines are then the caller's to keep, and only
    ``abort()`` cuts a request. ``deadline_s`` is only named in the log line of a cut.
    """

    def __init__(self, *, watchdog: bool, deadline_s: float) -> None:
        self._use_watchdog = watchdog
        self._deadline_s = deadline_s
        self._lock = threading.Condition()
        self._channels: weakref.WeakSet[Any] = weakref.WeakSet()
        self._deadlines: dict[int, tuple[float, Any]] = {}
        self._expired: set[int] = set()
        self._watchdog: threading.Thread | None = None
        self.aborted = False

    def add(self, channel: Any) -> None:
        """Track ``channel``: ``abort()`` shuts its sockets down too."""
        with self._lock:
            self._channels.add(channel)

    def channels(self) -> list:
        with self._lock:
            return list(self._channels)

    def arm(self, channel: Any, deadline_s: float) -> int:
        """This thread's request on ``channel`` ends within ``deadline_s``; its token."""
        token = threading.get_ident()
        with self._lock:
            self._deadlines[token] = (time.monotonic() + deadline_s, channel)
            if self._watchdog is None and self._use_watchdog:
                self._watchdog = threading.Thread(target=self._watch, name="pattern_track-deadline", daemon=True)
                self._watchdog.start()
            self._lock.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._lock:
            self._deadlines.pop(token, None)

    def expired(self, token: int) -> bool:
        """Did the watchdog cut the request of ``token``? Asking forgets it."""
        with self._lock:
            expired = token in self._expired
            self._expired.discard(token)
        return expired

    def _watch(self) -> None:
        with self._lock:
            while not self.aborted:
                now = time.monotonic()
                expired = [t for t, (d, _) in self._deadlines.items() if d <= now]
                for token in expired:
                    _, channel = self._deadlines.pop(token)
                    self._expired.add(token)
                    log.warning("a request passed its deadline (request_deadline_s %.1f, or the caller's "
                                "timeout); aborting it", self._deadline_s)
                    channel.shutdown_sockets()
                nearest = min((d for d, _ in self._deadlines.values()), default=None)
                self._lock.wait(None if nearest is None else max(nearest - now, 0.01))

    def abort(self) -> None:
        """Fail every request in flight now and refuse new ones (used at exit)."""
        with self._lock:
            self.aborted = True
            channels = list(self._channels)
            self._lock.notify_all()
        for channel in channels:
            channel.shutdown_sockets()
