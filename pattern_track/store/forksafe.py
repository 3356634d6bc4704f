"""The one lock ``fork()`` waits for (standard library only).

Our background threads hold ``guard`` while they import modules and while they are inside
a SQLite transaction of the outbox. A child forked in the middle of either would inherit
a lock held by a thread that no longer exists: a module's import lock (the child's first
import of it blocks for good) or SQLite's own in-process lock records (the child's first
open of the outbox never succeeds; SQLite documents that its state does not survive
fork). lifecycle.py registers the fork hooks that take it: the forking thread waits (at
most ``FORK_WAIT_S``; a fork must never hang on us) until neither is in progress.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["FORK_WAIT_S", "guard"]

#: The longest fork() waits for our threads to finish an import or a transaction.
FORK_WAIT_S = 10.0

guard = threading.RLock()
_taken = threading.local()


#: Modules with fork hooks of their own that take a lock before a fork and release it
#: after it in the parent: (module, lock attribute). Imported after our hooks were
#: registered, their "before" hook runs before ours and their "after_in_parent" after
#: ours. One imported during a fork (our background thread's guarded imports load logging
#: while the fork waits for the guard, or just before, between CPython's copy of the hook
#: list and our hook) registers too late for that fork's "before" round but in time for
#: its "after_in_parent" round, which then releases a lock nobody took ("Exception ignored
#: ... cannot release un-acquired lock"). ``after_fork_in_parent`` takes it first.
_FORK_LOCKING = (("logging", "_lock"), ("concurrent.futures.thread", "_global_shutdown_lock"))
#: Those already imported when our hooks were registered: their hooks run in the usual order.
_BEFORE_US = frozenset(name for name, _ in _FORK_LOCKING if name in sys.modules)


def before_fork() -> None:
    # logging's own before-fork hook may have run first (it registers when logging is
    # imported, after ours) and holds logging's lock, which a thread of ours inside a
    # guarded import may be waiting for: let go of it while we wait for the guard, then
    # take it back as often as it was held (the order is then ours: guard, then logging).
    held = _release_logging_lock()
    try:
        _taken.held = guard.acquire(timeout=FORK_WAIT_S)
    finally:
        for lock in held:
            lock.acquire()


def _release_logging_lock() -> list:
    """Release logging's module lock as often as this thread holds it; the releases made."""
    logging = sys.modules.get("logging")
    lock = getattr(logging, "_lock", None)
    released: list = []
    if lock is None:  # logging not imported (or without a module lock)
        return released
    is_owned = getattr(lock, "_is_owned", None)
    while is_owned is not None and is_owned():
        lock.release()
        released.append(lock)
    return released


def after_fork_in_parent() -> None:
    # Registered before those modules' hooks, this runs first: take the lock each newcomer
    # is about to release, so its release balances (see _FORK_LOCKING).
    for name, attribute in _FORK_LOCKING:
        module = sys.modules.get(name)
        lock = getattr(module, attribute, None)
        if lock is None or name in _BEFORE_US:
            continue
        is_owned = getattr(lock, "_is_owned", None)  # an RLock (logging's); else a plain Lock
        if not (is_owned() if is_owned is not None else lock.locked()):
            lock.acquire()  # its "before" hook did not run this time: balance its release
    if getattr(_taken, "held", False):
        _taken.held = False
        guard.release()


def after_fork_in_child() -> None:
    global guard
    guard = threading.RLock()
    _taken.held = False
