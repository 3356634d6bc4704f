"""Dead letters: the events the service refused for good, kept with its reason.

``d-<n>`` keys in the outbox's cache, with ``s:dead_count`` beside them; ``Outbox`` has
these methods (``pattern-track dead-letter`` lists, retries and purges them).
"""

from __future__ import annotations

import time
from typing import Any

from .diskstore import storage_errors

__all__ = ["DEAD", "DeadLetters"]

DEAD = "d"
_DEAD_COUNT = "s:dead_count"


class DeadLetters:
    """Dead letters over ``self._cache`` (set by ``Outbox``); raises ``OutboxError``."""

    _cache: Any

    def add_dead(self, event: bytes, reason: str, detail: str) -> None:
        with storage_errors("dead letter"), self._cache.transact():
            self._cache.push({"t": time.time(), "event": event, "reason": reason, "detail": detail}, prefix=DEAD)
            self._cache.set(_DEAD_COUNT, self._cache.get(_DEAD_COUNT, 0) + 1)

    def dead_count(self) -> int:
        with storage_errors("count"):
            return int(self._cache.get(_DEAD_COUNT, 0))

    def dead_letters(self) -> list[tuple[str, dict]]:
        with storage_errors("scan"):
            keys = [k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(DEAD + "-")]
            return [(k, v) for k in keys if (v := self._cache.get(k))]

    def remove_dead(self, keys: list[str]) -> int:
        removed = 0
        with storage_errors("purge"), self._cache.transact():
            for key in keys:
                removed += bool(self._cache.delete(key))
            self._cache.set(_DEAD_COUNT, max(self._cache.get(_DEAD_COUNT, 0) - removed, 0))
        return removed
