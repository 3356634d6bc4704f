"""``track()``: check and serialise one event on the caller's thread, journal it, hand it on.

``track`` is a method of ``Tracker`` (tracker.py binds it, hence the first parameter,
``self``). The event is checked and serialised here, so a bad one is refused at once with
a reason; it is appended to this process's journal with one ``write()`` (from then on it
survives the death of the process), then handed to the dispatcher. Nothing here raises,
waits on the network or prints.
"""

from __future__ import annotations

import threading

from .. import event as _event, logs
from ..errors import CacheError
from ..process import lifecycle
from ..store.journal import JournalFull

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..tracker import Tracker

__all__ = ["track"]

log = logs.get("pattern_track.tracker")  # its name from before it moved out of tracker.py

#: track() inside track() on one thread (a signal or logging handler of the application):
#: allowed this deep, then refused with a count.
_MAX_NESTING = 3
#: How long the first track() waits for its background thread to make sure a detached
#: drainer runs (one lock try, and a spawn when none does: ~1 ms).
_COVER_WAIT_S = 0.01
_nesting = threading.local()


def track(self: Tracker, event_type: str, /, **fields: Any) -> str | None:
    """Record one wire event; return its id (also in ``pattern_data.event_id``), or None.

    ``event_type``: ``pattern_created``, ``pattern_modified``, ``pattern_merged``,
    ``pattern_applied``, ``pattern_deprecated``, ``pattern_forked`` or
    ``pattern_validated``. ``fields`` are the service's: ``pattern_id`` (required, at
    most 255 characters), ``pattern_name``, ``pattern_type``, ``pattern_version``,
    ``tool_name``, ``file_path``, ``language``, ``pattern_data`` (a dict; required and
    non-empty for created/validated), ``parent_pattern_ids`` (required for
    modified/forked, at least two for merged), ``edge_type``, ``transformation_type``,
    ``reason``, ``triggered_by``.

    An accepted event is in this process's journal before this returns (it survives
    the process's death) and is delivered in the background. A refused one returns
    None and is counted in ``stats()["dropped"]`` under its reason:
    ``invalid_event_type``, ``invalid_field``, ``unknown_field``, ``field_too_long``,
    ``missing_pattern_id``, ``missing_parent``, ``empty_pattern_data``,
    ``invalid_edge_type``, ``invalid_transformation_type``, ``not_json``,
    ``invalid_unicode``, ``nul_character``, ``too_large`` (over ``max_event_bytes``),
    ``cache_full`` (the cache's size cap), ``closed`` (after ``close()``), ``disabled``,
    ``before_send`` / ``before_send_error``, ``reentrant`` (``track()`` nested more than
    three deep on one thread) or ``internal_error``. Never raises, never blocks on the
    network, never prints; logs give reasons and sizes, never the event's content.
    """
    depth = getattr(_nesting, "depth", 0)
    if depth >= _MAX_NESTING:
        # A logging handler or signal handler of the application calling track() from
        # inside track(), again and again: refuse quietly (logging would recurse).
        self._counters.drop("reentrant")
        return None
    _nesting.depth = depth + 1
    try:
        return _track(self, event_type, fields)
    finally:
        _nesting.depth = depth


def _track(self: Tracker, event_type: str, fields: dict[str, Any]) -> str | None:
    try:
        if not self.config.enabled:
            self._counters.drop("disabled")
            return None
        if self._closed:
            self._counters.drop("closed")
            return None
        if not self._started:  # first event, or a forked child (lifecycle resets it)
            self._ensure_started()
        config = self.config
        event = _event.build(event_type, fields, triggered_by=config.triggered_by)
        if config.before_send is not None:
            sent = _before_send(self, config.before_send, event)
            if sent is None:
                return None
            event = sent
        data = _event.encode(event)
        if len(data) > config.max_event_bytes:
            self._counters.drop("too_large")
            log.warning("event refused: %d bytes is over max_event_bytes", len(data))
            return None
        event_id: str = event["pattern_data"][_event.EVENT_ID_KEY]  # build() put it there
        taken: list[bool] = []

        def to_memory(seq: int | None) -> None:  # under the journal's lock: see Journal.append
            taken.append(self._dispatcher.submit(data, seq))

        seq = _journal_write(self, data, to_memory)
        if seq is False:
            return None
        if seq == 0 and not self._drainer.covered.is_set():
            # The first event is durable: the background thread makes sure a drainer
            # runs (a SIGKILL from now on is covered); wait for it a few ms, once.
            self._drainer.journaled()
            if self.config.handoff:
                self._drainer.covered.wait(_COVER_WAIT_S)
        if seq is None:  # no journal: memory only
            to_memory(None)
        self._counters.add("accepted")
        if not taken[0]:
            self._counters.drop("closed", accepted=True)
            return None
        if lifecycle.exiting() and not self._handed_off and seq is not None:
            self._hand_off()  # tracked after the exit hook: a drainer delivers it
        return event_id
    except _event.InvalidEvent as exc:
        self._counters.drop(exc.reason)
        log.warning("event refused (%s): %s", exc.reason, exc.detail)
    except Exception as exc:  # the promise: nothing escapes track()
        self._counters.drop("internal_error")
        log.error("event refused by an internal error: %s", type(exc).__name__, exc_info=True)
    return None


def _journal_write(self: Tracker, data: bytes, then: Callable[[int | None], object]) -> int | bool | None:
    """The event's journal sequence number; None if the journal is unusable (memory
    carries the event, counted); False if the cache's size cap refuses it."""
    if not self._journal_ok:
        return None
    try:
        return self._journal.append(data, then)
    except JournalFull:
        self._counters.drop("cache_full")
        log.warning("event refused: the cache is at cache_max_size_mb")
        return False
    except (OSError, CacheError) as exc:  # unwritable, full disk, unsafe directory
        self._journal_ok = False
        self._counters.note("journal_unwritable")
        log.warning("journal unwritable (%s); events are held in memory until delivered", type(exc).__name__)
        # Nothing durable holds them: load the network parts now, not after linger_s,
        # and let exit give them its budget (exit_timeout_s) to be delivered.
        self._dispatcher.note_memory_only()
        self._drainer.end_linger()
        return None


def _before_send(self: Tracker, hook: Callable[[dict[str, Any]], Any], event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        result = hook(event)
    except Exception as exc:
        self._counters.drop("before_send_error")
        log.warning("before_send raised %s; event dropped", type(exc).__name__)
        return None
    if result is None:
        self._counters.drop("before_send")
        return None
    if not isinstance(result, dict):
        self._counters.drop("before_send_error")
        log.warning("before_send returned %s, not a dict; event dropped", type(result).__name__)
        return None
    # The hook may not remove the id or break the contract: check again.
    event_id = _event.event_id_of(event)
    fields = {k: v for k, v in result.items() if k != "event_type"}
    checked = _event.build(result.get("event_type"), fields, triggered_by=self.config.triggered_by)
    if event_id:
        checked["pattern_data"][_event.EVENT_ID_KEY] = event_id
    return checked
