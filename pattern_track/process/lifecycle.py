"""Process lifecycle: exit, fork and the hand-off to a detached drainer.

Every accepted event is already in this process's journal, so the end of a process has
nothing to save; it only decides who delivers what is left:

- **Exit.** One hook, registered with ``threading._register_atexit`` (it runs before
  CPython joins non-daemon threads, ``concurrent.futures`` workers among them, and before
  ``atexit`` handlers), tells each live tracker to stop starting requests and to give a
  request in flight at most ``exit_timeout_s``. If the journal still holds unsettled events, a detached drainer is
  started (``pattern-track drain --after-pid``; unless ``handoff=False``) that waits for
  this process to die, then adopts its journal. ``track()`` after the hook (non-daemon
  threads, the application's executors, ``atexit`` handlers) only writes the journal and
  makes sure that hand-off happens. No thread is started once exit began (3.12.0-3.12.2
  refuse it) and no signal handler is installed: the application's own SIGTERM
  semantics stay untouched, and SIGTERM, SIGKILL or ``os._exit`` at any moment lose
  nothing that ``track()`` accepted.
- **Fork.** A child rebuilds every lock, thread and connection on its first ``track()``,
  writes a journal of its own and never resends its parent's events. ``fork()`` waits for
  ``forksafe.guard``, which our threads hold around imports and SQLite transactions, so
  a child never inherits an import lock or SQLite lock state of a thread that is gone.
"""

from __future__ import annotations

import os
import sys  # at module level: a tracker may be made in a finalizer at shutdown, when imports fail
import threading

from .. import logs
from ..store import forksafe

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["exiting", "hand_off", "register"]

log = logs.get(__name__)

#: Strong references: a tracker made inside a function (a pool task) and dropped must
#: still hand off at exit what its journal holds. ``close()`` releases it.
_live: set[Any] = set()
_state = {"hook": False, "exiting": False}
_lock = threading.Lock()


def exiting() -> bool:
    """Has this interpreter begun to exit? Our hook ran, or CPython's threading shutdown
    began (``threading._SHUTTING_DOWN``; e.g. a tracker first made in an atexit handler,
    after every exit hook ran): no thread may start, events are handed off."""
    return _state["exiting"] or getattr(threading, "_SHUTTING_DOWN", False)


def register(tracker: Any) -> None:
    """Track ``tracker`` for the exit hook (registered once per process)."""
    _live.add(tracker)
    with _lock:
        if _state["hook"]:
            return
        try:
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]  # CPython's, private: not in typeshed
        except RuntimeError:
            # Exit already began (a tracker first made in an atexit handler): no hook can
            # run any more, so behave as after it: journal, start no thread, hand off.
            _state["exiting"] = True
        except AttributeError:  # a Python without threading._register_atexit
            import atexit

            atexit.register(_at_exit)
        _state["hook"] = True
        if not _state["exiting"] and _late_in_exit():
            _state["exiting"] = True


def _late_in_exit() -> bool:
    """Is this first tracker made inside an ``atexit`` handler of a process that never
    imported threading before? CPython then skipped its threading shutdown (so neither our
    hook nor ``threading._SHUTTING_DOWN`` can say exit began), and the interpreter ends as
    soon as the handler returns. Told by the stack: on the main thread, the outermost
    frame is a function called from C, not a module's code (``<module>``, or runpy's for
    ``-m``). Only asked when threading was not loaded before pattern_track's tracker."""
    package = sys.modules.get("pattern_track")
    if getattr(package, "_THREADING_PRELOADED", True) or threading.current_thread() is not threading.main_thread():
        return False
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    code = frame.f_code
    return code.co_name != "<module>" and not code.co_filename.endswith("runpy.py")


def exit_began() -> None:
    """CPython refused something only refused at shutdown (a thread): treat it as exit."""
    _state["exiting"] = True


def unregister(tracker: Any) -> None:
    _live.discard(tracker)


def _at_exit() -> None:
    if _state["exiting"]:
        return  # registered twice (keep_exit_hook_first); runs once
    _state["exiting"] = True
    for tracker in list(_live):
        try:
            tracker._on_exit()
        except Exception:  # never let one tracker stop the others
            log.exception("pattern_track: error at exit")


#: What a detached drainer must share with the tracker that hands off to it.
HANDOFF_SETTINGS = ("base_url", "api_key", "verify_tls", "trust_env", "connect_timeout_s", "read_timeout_s",
                    "request_deadline_s", "lease_ttl_s", "batch_size", "batch_max_bytes", "max_attempts",
                    "breaker_failure_threshold", "breaker_reset_timeout_s", "cache_max_size_mb",
                    "outbox_max_events", "shared_state")


def hand_off(config: Any) -> bool:
    """Start a detached drainer that adopts this process's journal once it has died,
    unless a drainer already runs (it adopts the journal too). True if one was started."""
    from .launcher import ensure_drainer

    settings = {name: getattr(config, name) for name in HANDOFF_SETTINGS}
    try:
        return ensure_drainer(config.resolved_cache_dir, service_dir=config.service_dir, after_pid=os.getpid(),
                              settings=settings)
    except OSError as exc:
        log.warning("cannot start a drainer (%s); the next one adopts this journal", type(exc).__name__)
        return False


def _before_fork() -> None:
    forksafe.before_fork()


def _after_fork_in_parent() -> None:
    forksafe.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _lock
    forksafe.after_fork_in_child()
    _lock = threading.Lock()
    _state["exiting"] = False
    from .. import event

    event.reset_event_ids()  # a child must not repeat its parent's ids
    for tracker in list(_live):
        tracker._after_fork()


if hasattr(os, "register_at_fork"):
    # Registered at import, before any thread of ours exists. Nothing else is imported
    # for it: logging and concurrent.futures cost a short process ~15 ms and ~20 ms here.
    # If logging is imported later (by our background imports) its before-fork hook runs
    # first and takes its lock; forksafe.before_fork lets go of that lock while it waits
    # for our guard, so the two never wait on each other.
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
