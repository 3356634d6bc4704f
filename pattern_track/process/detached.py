"""The detached drainer process (``pattern-track drain --detached``): one per user and service.

Started by the hook, by a tracker (as soon as its journal holds events, at ``close()`` and
at exit) and by the CLI when something waits and none runs (launcher.py):

1. **Lock.** The service's ``drainer.lock``: one drainer per user and service; a second
   one ends at once. Its CPU priority drops (``nice`` 10): the user's own processes first.
2. **Cover.** While the process that started it lives and nothing else waits (no spool
   file, no journal of an ended process), it sleeps on the standard library alone,
   polling every ``COVER_POLL_S``: a process that delivers its own events never makes it
   load requests (~250 ms of CPU, ~25 MB) and its death (SIGKILL) is noticed at once.
   Another process that leaves work (``close()`` into the outbox) and finds the lock
   held leaves ``drainer.wake``, which ends the cover too.
3. **Deliver.** It opens the outbox; if nothing waits it ends there. Otherwise it loads
   the network parts and drains while anything waits (``Drainer.run_until_idle``): during
   an outage of any length it sleeps on the probes' and backoff's schedule.
"""

from __future__ import annotations

import os
import threading

from ..store import inventory
from . import launcher

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run"]

#: How much a detached drainer lowers its CPU priority (``os.nice``).
DETACHED_NICE = 10
#: How often the cover looks whether its process ended or something else waits.
COVER_POLL_S = 0.05


def run(config: Any, *, after_pid: int | None, idle_s: float, max_s: float | None, detached: bool) -> int:
    """Be the service's drainer until nothing waits; 0 when all was delivered (or another
    drainer runs), 1 when ``max_s`` ended it with events left."""
    from ..store.services import prepare

    service_dir = prepare(config.service_dir, config.base_url)  # the lock lives in the service's store
    lock = launcher.drainer_lock(service_dir)
    if lock is None:
        return 0  # another drainer is at work
    try:
        if detached:
            try:
                os.nice(DETACHED_NICE)
            except OSError:
                pass
        if after_pid:
            _cover(service_dir, after_pid)
        return _deliver(config, idle_s=idle_s, max_s=max_s)
    finally:
        os.close(lock)


def _cover(service_dir: str, pid: int) -> None:
    """Sleep while ``pid`` lives and nothing but live journals waits (stdlib only)."""
    from ..store.orphans import orphans_waiting
    from ..store.spool import Spool

    pause = threading.Event()
    spool = Spool(service_dir)
    while launcher.pid_running(pid) and not (spool.files() or orphans_waiting(service_dir)
                                             or launcher.woken(service_dir)):
        pause.wait(COVER_POLL_S)


def _deliver(config: Any, *, idle_s: float, max_s: float | None) -> int:
    from ..clock import Clock
    from ..delivery.core import Core, Counters
    from ..delivery.dispatcher import Dispatcher
    from ..delivery.drainer import Drainer

    core = Core(config, Clock(), Counters())
    core.start(network=False)  # the outbox first: is there anything to deliver at all?
    if core.outbox is None:
        return 1
    try:
        if not inventory.take(config.service_dir, core.outbox).keeps_a_drainer():
            return 0
        core.start(network=True)
        dispatcher = Dispatcher(core)
        done = Drainer(core, dispatcher).run_until_idle(idle_s=idle_s, max_s=max_s)
        return 0 if done else 1
    finally:
        core.outbox.close()
