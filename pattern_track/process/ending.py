"""How a tracker ends: ``close()``, the exit hook, and the hand-off to a detached drainer.

Every accepted event is already in the journal, so ending has nothing to save; it only
decides who delivers what is left, by one rule: **whoever leaves work behind makes sure a
drainer runs** (store/inventory.py says what waits; process/launcher.py starts a drainer
unless one runs). Three moments do it:

- **Cover** (from the tracker's background thread, never the caller's): as soon as this
  process has events only its journal holds, and again whenever it has again after they
  settled. A process SIGKILLed right after ``track()`` is then covered: the drainer stays
  up while live journals hold events, and adopts them once their writer is gone.
- **close(timeout)**: delivery starts at once (the linger is cut short), gets the budget
  less what stopping needs, then what is left goes to the outbox (or stays in the journal,
  released for adoption) and a drainer is made sure of, whatever the timeout.
- **Exit** (lifecycle's hook): no new request; a request in flight gets ``exit_timeout_s``;
  events that exist only in memory (the journal could not be written: a read-only or full
  disk) get that budget to be delivered, since nothing else will, and what is still not
  safe is counted (``dropped["outbox_unavailable"]``) and logged; then the hand-off.

``handoff=False`` forbids every detached drainer: the next process of ours delivers.
"""

from __future__ import annotations

import os

from .. import logs
from ..clock import as_seconds
from ..store.inventory import work_left
from . import launcher, lifecycle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["at_exit", "close", "cover", "hand_off"]

log = logs.get(__name__)

#: A drainer we started this recently may still be importing (it takes its lock only
#: then): do not start a second one.
STARTING_S = 5.0


def cover(tracker: Any) -> None:
    """Make sure a detached drainer runs while this process's journal holds events (from
    the tracker's drainer thread). One lock try when one runs. The drainer sleeps, cheaply,
    while this process lives and delivers its own events (process/detached.py)."""
    hand_off(tracker, after_pid=os.getpid())


def hand_off(tracker: Any, *, after_pid: int | None) -> bool:
    """Start a detached drainer for the tracker's service unless one runs (or we started
    one that may still be starting); True if one was started."""
    config = tracker.config
    if not config.handoff:
        return False
    clock = tracker._clock
    started = tracker._drainer_started_at
    if started is not None and clock.monotonic() - started < STARTING_S:
        return False
    settings = {name: getattr(config, name) for name in lifecycle.HANDOFF_SETTINGS}
    try:
        spawned = launcher.ensure_drainer(config.resolved_cache_dir, service_dir=config.service_dir,
                                          after_pid=after_pid, settings=settings)
    except Exception as exc:  # OSError, or anything at interpreter shutdown
        log.warning("cannot start a drainer (%s); the next process of ours delivers", type(exc).__name__)
        return False
    if spawned:
        tracker._drainer_started_at = clock.monotonic()
    return spawned


def close(tracker: Any, timeout: Any) -> None:
    """``Tracker.close(timeout)``: see the module docstring. Never raises."""
    config = tracker.config
    timeout_s = as_seconds(timeout, config.exit_timeout_s)
    with tracker._lock:
        first = not tracker._closed
        tracker._closed = True
    if not first:
        tracker._close_done.wait(timeout_s)
        return
    try:
        if tracker._started and tracker._pid == os.getpid():
            clock = tracker._clock
            deadline = clock.monotonic() + timeout_s
            dispatcher, drainer = tracker._dispatcher, tracker._drainer
            drainer.end_linger()  # deliver now: nothing is gained by waiting out linger_s
            # Delivery gets the budget less what stopping needs (~0.1 s: cut, spill, join),
            # and starts no request it cannot expect to finish in it (the drainer sends).
            budget = max(timeout_s - 0.1, timeout_s / 2)
            if not tracker._journal_ok:
                dispatcher.send_until(None)  # memory is all these events have: try anyway
            else:
                dispatcher.send_until(clock.monotonic() + budget)
            dispatcher.flush(budget)
            dispatcher.exit(0.0)
            drainer.stop(0.0)
            if tracker._core.transport is not None:
                # Cut what is still in flight, the drainer's request too: it must not
                # hold the shared drain lease after close() (a cut is never blamed).
                tracker._core.transport.abort()
            dispatcher.spill_unsettled(wait_s=max(deadline - clock.monotonic(), 0.01))
            drainer.stop(max(deadline - clock.monotonic(), 0.01))
            _finish_journal(tracker)
        if _work_left(tracker):
            hand_off(tracker, after_pid=None)  # what close() left must not wait for chance
    except Exception:
        log.error("close failed; the journal keeps what was not settled", exc_info=True)
    finally:
        lifecycle.unregister(tracker)
        tracker._close_done.set()


def at_exit(tracker: Any) -> None:
    """The interpreter is exiting (lifecycle's hook): hand off instead of flushing."""
    if tracker._closed or tracker._pid != os.getpid():
        return
    config = tracker.config
    if tracker._started:
        clock = tracker._clock
        deadline = clock.monotonic() + config.exit_timeout_s
        # Memory-only events (no journal) are delivered within the budget if they can be.
        tracker._dispatcher.exit(config.exit_timeout_s)
        # The drainer thread may be delivering a batch (another process's journal it
        # adopted): let it finish and settle within the same budget, or it is resent.
        tracker._drainer.stop(max(deadline - clock.monotonic(), 0.0))
        _finish_journal(tracker)
    if _work_left(tracker):
        hand_off(tracker, after_pid=os.getpid())


def _finish_journal(tracker: Any) -> None:
    """Remove the journal if everything is settled; else mark it for adoption."""
    if not tracker._journal.close():
        tracker._journal.mark_exiting()
        tracker._journal_left = True


def _work_left(tracker: Any) -> bool:
    """Does this process leave anything undelivered? Its journal, or what waits in the
    store (outbox, if open; spool; ended journals). Cheap: no file is read whole."""
    if getattr(tracker, "_journal_left", False):
        return True
    core = tracker._core
    outbox = core.outbox if core.outbox_ready.is_set() else None
    return work_left(tracker.config.service_dir, outbox)
