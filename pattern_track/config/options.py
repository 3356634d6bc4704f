"""``Options``: every keyword of ``Tracker(**options)``, for type checkers and IDE completion.

Imported only under ``TYPE_CHECKING`` (typing costs ~2.5 ms to import); ``Config``
validates the same options at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

__all__ = ["Options"]


class Options(TypedDict, total=False):
    """``Tracker(**options)``: every option, for type checkers and IDE completion
    (checked statically only; ``Config`` validates at run time)."""

    enabled: bool
    cache_max_age_days: float
    cache_max_size_mb: float
    outbox_max_events: int
    breaker_failure_threshold: int
    breaker_reset_timeout_s: float
    health_check_interval_s: float
    health_check_timeout_s: float
    connect_timeout_s: float
    read_timeout_s: float
    request_deadline_s: float
    exit_timeout_s: float
    durable: bool
    handle_sigterm: bool
    journal_fsync: bool
    linger_s: float
    handoff: bool
    max_workers: int
    batch_size: int
    batch_max_bytes: int
    max_buffer_events: int
    max_event_bytes: int
    drain_interval_s: float
    backoff_base_s: float
    backoff_max_s: float
    max_attempts: int
    lease_ttl_s: float
    shared_state: bool
    api_key: str | None
    verify_tls: bool
    trust_env: bool
    before_send: Callable[[dict[str, Any]], Any] | None
    triggered_by: str

