"""The service's routes, and what a request to it comes back as (standard library only).

``Answer`` is an HTTP answer, whole or cut short; ``NoAnswer`` says why there was none.
transport.py produces both, outcome.py decides what they mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["API", "Answer", "BATCH_PATH", "HEALTH_PATH", "NEVER_SENT", "NoAnswer", "TRACK_PATH"]

API = "/api/pattern-traceability"
TRACK_PATH = API + "/lineage/track"
BATCH_PATH = API + "/lineage/track/batch"
HEALTH_PATH = API + "/health"


class Answer(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: False when the status line and headers arrived but the body did not, whole (a reply
    #: cut short by a proxy, a reset, our own deadline): ``body`` is then empty.
    complete: bool = True


#: Reasons of a request that never reached the service: nothing it sent can be stored.
NEVER_SENT = frozenset({"refused", "dns", "tls"})


class NoAnswer(Exception):
    """The request got no HTTP answer.

    ``reason`` tells why: ``refused``, ``timed_out``, ``tls``, ``dns``, ``reset``,
    ``connection_error`` or ``cut`` (we aborted it ourselves: exit, ``close()``, a
    caller's timeout); ``service_fault`` is False for ``cut``, so a request we cut is never
    recorded against the service. ``in_doubt``: the body may have reached the service,
    which commits what a client abandons (wire-contract.md), so what it carried may be
    stored already; False only when it cannot have been (refused, DNS, TLS, or cut before
    it was sent).
    """

    def __init__(self, message: str, reason: str = "connection_error", *, service_fault: bool = True,
                 in_doubt: bool | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.service_fault = service_fault
        self.in_doubt = reason not in NEVER_SENT if in_doubt is None else in_doubt
