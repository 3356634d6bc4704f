"""What to do with each event once its delivery outcome is known; shared by both engines."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from .batches import event_id_from
from .outcome import OK, PERMANENT, SUSPECT, Outcome

__all__ = ["Settlement", "settle"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Settlement:
    sent: int = 0
    dead: list = dataclasses.field(default_factory=list)  # (event, Outcome)
    keep: list = dataclasses.field(default_factory=list)
    keep_attempts: list = dataclasses.field(default_factory=list)
    #: One flag per kept event: True when the answer was about the event itself
    #: (suspect), so it can be parked on its own schedule (parking.py).
    keep_suspect: list = dataclasses.field(default_factory=list)
    retry_after_s: float | None = None
    reason: str | None = None

    def add(self, other: Settlement) -> None:
        """Fold another settlement (of a later part of the same batch) into this one."""
        self.sent += other.sent
        self.dead += other.dead
        self.keep += other.keep
        self.keep_attempts += other.keep_attempts
        self.keep_suspect += other.keep_suspect
        self.reason = other.reason or self.reason
        if other.retry_after_s is not None:
            self.retry_after_s = max(self.retry_after_s or 0.0, other.retry_after_s)


def settle(events: Sequence[bytes], attempts: Sequence[int], outcomes: Sequence[Outcome], *,
           max_attempts: int) -> Settlement:
    """Split events into sent, dead letters and those to keep for a later attempt.

    A *suspect* outcome spends one of ``max_attempts`` tries; a transient one does not
    (the service being down says nothing about the event).
    """
    result = Settlement()
    for event, tries, outcome in zip(events, attempts, outcomes):
        if outcome.kind == OK:
            result.sent += 1
        elif outcome.kind == PERMANENT or (outcome.kind == SUSPECT and tries + 1 >= max_attempts):
            result.dead.append((event, outcome))
            log.warning("event %s dead-lettered: %s", event_id_from(event), outcome.reason)
        else:
            result.keep.append(event)
            result.keep_attempts.append(tries + (outcome.kind == SUSPECT))
            result.keep_suspect.append(outcome.kind == SUSPECT)
            result.reason = outcome.reason
            if outcome.retry_after_s is not None:
                result.retry_after_s = max(result.retry_after_s or 0.0, outcome.retry_after_s)
    return result
