"""Where breaker and health state live: the shared outbox, or this process's memory.

``MemoryState`` has the same small surface as ``Outbox``'s state methods (``get``, ``set``,
``incr``, ``acquire_lease``, ``release_lease``) so the breaker and health monitor do not
care which they have. Memory is used when sharing is off or the cache is unusable.
"""

from __future__ import annotations

import threading
import time

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MemoryState"]


class MemoryState:
    """Process-local state with the ``Outbox`` state interface."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any, expire_s: float | None = None) -> None:
        self._values[key] = value

    def incr(self, key: str, delta: int = 1) -> int:
        with self._lock:
            value = self._values.get(key, 0) + delta
            self._values[key] = value
            return value

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            held = self._values.get("lease:" + name)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._values["lease:" + name] = (owner, now + ttl_s)
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._lock:
            held = self._values.get("lease:" + name)
            if held is not None and held[0] == owner:
                del self._values["lease:" + name]
