"""Exponential backoff with jitter, and honouring ``Retry-After``."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random

__all__ = ["Backoff"]


class Backoff:
    """``next()`` gives a random delay in ``[cap / 2, cap]`` with ``cap = min(max, base * 2**n)``
    after ``n`` failures (at least ``retry_after_s`` when given); ``reset()`` after success.

    The jitter ("equal jitter") spreads a hundred hook processes that found the service
    down at the same moment, so they do not come back in step, while each still waits at
    least half its cap.
    """

    def __init__(self, base_s: float, max_s: float, *, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng  # made on first use: a process that never backs off never imports random

    def next(self, retry_after_s: float | None = None) -> float:
        cap = min(self.max_s, self.base_s * (2 ** min(self.failures, 32)))
        self.failures += 1
        if self._rng is None:
            import random

            self._rng = random.Random()
        delay = self._rng.uniform(cap / 2, cap) if cap > 0 else 0.0
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def reset(self) -> None:
        self.failures = 0
