"""The one place pattern_track reads time or waits.

Every timer uses monotonic time, so wall-clock jumps do not open or close the breaker,
expire leases early or stall the drainer. ``time.monotonic()`` is CLOCK_MONOTONIC on
Linux: one clock for every process on the machine, which lets processes share
monotonic deadlines through the cache. Tests inject ``testing.FakeClock``.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Clock"]


class Clock:
    """Real time: ``monotonic()`` for durations, ``time()`` for timestamps people read."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def wait(self, event: threading.Event, timeout_s: float | None) -> bool:
        """Wait until ``event`` is set or ``timeout_s`` passes; return whether it is set."""
        return event.wait(timeout_s)
