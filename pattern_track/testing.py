"""Test doubles for users' own tests (and ours): a clock that only moves when told."""

from __future__ import annotations

import threading

from .clock import Clock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .tracker import Tracker

__all__ = ["FakeClock", "tracker_with_clock"]


class FakeClock(Clock):
    """Monotonic and wall time that move only through ``advance()``.

    ``wait()`` returns at once with the event's state, after advancing time by the
    timeout, so loops driven by it run without real sleeps.
    """

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall = wall
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._wall += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move only the wall clock (an NTP step, a user changing the date)."""
        with self._lock:
            self._wall += seconds

    def wait(self, event: threading.Event, timeout_s: float | None) -> bool:
        if event.is_set():
            return True
        if timeout_s:
            self.advance(timeout_s)
        return event.is_set()


def tracker_with_clock(base_url: str | None = None, *, clock: Clock, **options: Any) -> Tracker:
    """A ``Tracker`` whose timers all read ``clock`` (a ``FakeClock`` in tests): the testing
    seam, kept out of ``Tracker``'s public signature."""
    from .config import config_from_options
    from .tracker import Tracker

    tracker = Tracker.__new__(Tracker)
    tracker._setup(config_from_options(base_url, options.pop("cache_dir", None), options), clock)
    return tracker
