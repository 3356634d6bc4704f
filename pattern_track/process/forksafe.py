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

import threading

__all__ = ["FORK_WAIT_S", "guard"]

#: The longest fork() waits for our threads to finish an import or a transaction.
FORK_WAIT_S = 10.0

guard = threading.RLock()
_taken = threading.local()


def before_fork() -> None:
    _taken.held = guard.acquire(timeout=FORK_WAIT_S)


def after_fork_in_parent() -> None:
    if getattr(_taken, "held", False):
        _taken.held = False
        guard.release()


def after_fork_in_child() -> None:
    global guard
    guard = threading.RLock()
    _taken.held = False
