"""The one place pattern_track reads time or waits.

Every timer uses monotonic time, so wall-clock jumps do not open or close the breaker,
expire leases early or stall the drainer. ``time.monotonic()`` is CLOCK_MONOTONIC on
Linux: one clock for every process on the machine, which lets processes share
monotonic deadlines through the cache. Tests inject ``testing.FakeClock``.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Clock", "as_seconds"]


class Clock:
    """Real time: ``monotonic()`` for durations, ``time()`` for timestamps people read."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    def wait(self, event: threading.Event, timeout_s: float | None) -> bool:
        """Wait until ``event`` is set or ``timeout_s`` passes; return whether it is set."""
        return event.wait(timeout_s)


def as_seconds(value: object, default: float) -> float:
    """A timeout in seconds from what a caller passed (None, a number, a numeric string);
    anything else, negative or NaN gives ``default`` with a log line, never an exception."""
    if value is None:
        return default
    try:
        seconds = float(value)  # type: ignore[arg-type]  # anything goes: TypeError is caught below
    except (TypeError, ValueError):
        seconds = float("nan")
    if seconds == seconds and seconds >= 0:
        return seconds
    from . import logs

    logs.get(__name__).warning("timeout of type %s is not a number of seconds; using %s",
                               type(value).__name__, default)
    return default
