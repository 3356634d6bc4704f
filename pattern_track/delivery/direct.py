"""Send events now, on the caller's thread, when nothing on disk can keep them.

For the hook (and anything else) on a read-only or full disk: no outbox, no journal, no
spool, so the only way an event survives is the service taking it before the process
ends. ``deliver_now`` builds a transport and a delivery with a breaker in memory (the
shared one lives in the store that cannot be used), sends within ``timeout_s`` and says
how many were stored. Slow (it imports requests, ~150-250 ms), so only for that case.
"""

from __future__ import annotations

import time

from .. import logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["deliver_now"]

log = logs.get(__name__)


def deliver_now(config: Any, events: Sequence[bytes], *, timeout_s: float) -> int:
    """Send ``events`` (serialised, in order) to ``config.base_url`` now; return how many
    the service stored. Whole-call bound: ``timeout_s`` after the imports (a request still
    in flight then is cut). Never raises."""
    try:
        from ..store.state import MemoryState
        from .batches import Delivery
        from .breaker import Breaker
        from .outcome import OK
        from .transport import BATCH_PATH, TRACK_PATH, Transport

        transport = Transport(config)
        breaker = Breaker(MemoryState(), failure_threshold=config.breaker_failure_threshold,
                          reset_timeout_s=config.breaker_reset_timeout_s, probe_ttl_s=1.0, owner="direct")
        delivery = Delivery(transport, breaker, track_path=TRACK_PATH, batch_path=BATCH_PATH,
                            batch_max_bytes=config.batch_max_bytes)
        sent = 0
        with transport.bounded(time.monotonic() + timeout_s):
            for start in range(0, len(events), config.batch_size):
                outcomes = delivery.send(events[start:start + config.batch_size])
                sent += sum(o.kind == OK for o in outcomes)
                if not all(o.kind == OK for o in outcomes):
                    break
        transport.close()
        log.warning("the cache cannot be written: %d of %d events sent straight to the service", sent, len(events))
        return sent
    except Exception as exc:
        log.error("could not send events straight to the service: %s", type(exc).__name__)
        return 0
