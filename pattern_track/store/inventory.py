"""What is undelivered, and where: the one answer, for one service's store.

Every place that must know whether anything still waits asks here: the drainer lives by
it (it ends only when nothing waits), exit and ``close()`` hand off by it, and
``stats()``, ``pattern-track stats``, ``sync`` and ``doctor`` print it. Undelivered
events of a service can be in five places (store/*.py):

- the **outbox** (``cache.db``; parked events included), shared by every process;
- **spool** files the hook wrote (``spool/*.json``);
- journals of **ended** processes (no lock held: SIGKILL, a crash, a pool worker), which
  any drainer adopts;
- journals of processes that are **ending** with events left (``<writer>.exit`` beside a
  journal still locked): they will not deliver those themselves;
- journals of **live** processes, past their watermark: the process delivers them itself,
  but it may still die, so a drainer stays up while any exist.

Damaged files moved aside (a corrupt ``cache.db`` quarantined as ``cache.db.corrupt-*``,
an unreadable spool file as ``*.bad``) are listed under ``quarantined`` until the user
removes them. Standard library only: the outbox is counted only when the caller hands one
in (or with ``open_outbox``), so exit never imports diskcache to ask.
"""

from __future__ import annotations

import os

from .orphans import EXIT_SUFFIX, _ended, _events, _watermark, _writers
from .spool import Spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Waiting", "journals", "quarantined", "take", "work_left"]

#: Names a damaged file gets when it is moved aside.
QUARANTINE_MARKS = (".corrupt-", ".bad")


class Waiting:
    """One snapshot of a service's undelivered events, by place (counts of events).

    ``outbox`` is None when the outbox was not read (not open, or unreadable: ``error``).
    """

    __slots__ = ("outbox", "parked", "spooled", "ended_journals", "ending_journals", "live_journals",
                 "dead_letter", "quarantined", "error")

    def __init__(self) -> None:
        self.outbox: int | None = None
        self.parked = self.spooled = self.ended_journals = self.ending_journals = self.live_journals = 0
        self.dead_letter = 0
        self.quarantined: list[str] = []
        self.error: str | None = None

    @property
    def undelivered(self) -> int:
        """Events nobody alive is delivering: outbox (parked included), spool, and the
        journals of ended and ending processes. A drainer's work."""
        return (self.outbox or 0) + self.spooled + self.ended_journals + self.ending_journals

    def keeps_a_drainer(self) -> bool:
        """Must a drainer be up? Anything undelivered, or a live process's journal holding
        events (the process may die before it delivers them)."""
        return self.undelivered > 0 or self.live_journals > 0

    def as_dict(self) -> dict:
        """``{outbox, parked, spooled, ended_journals, ending_journals, live_journals,
        undelivered, dead_letter, quarantined, error}``."""
        doc = {name: getattr(self, name) for name in self.__slots__}
        doc["undelivered"] = self.undelivered
        return doc


def journals(service_dir: str, *, skip: str | None = None) -> tuple[int, int, int]:
    """Unsettled events in the store's journals: ``(ended, ending, live)``. ``skip``: a
    writer of this process, counted by the caller from memory instead."""
    directory = os.path.join(service_dir, "journal")
    writers = _writers(directory)
    if not writers:
        return 0, 0, 0
    try:
        markers = {n[:-len(EXIT_SUFFIX)] for n in os.listdir(directory) if n.endswith(EXIT_SUFFIX)}
    except OSError:
        markers = set()
    ended = ending = live = 0
    for writer, paths in writers.items():
        if writer == skip:
            continue
        watermark = max(_watermark(p) for p in paths)
        count = len({seq for path in paths for seq, _ in _events(path) if seq >= watermark})
        if not count:
            continue
        if _ended(paths[0]):
            ended += count
        elif writer in markers:
            ending += count
        else:
            live += count
    return ended, ending, live


def quarantined(service_dir: str) -> list[str]:
    """Damaged files moved aside in the store (names, sorted), still there."""
    found = []
    for folder in (service_dir, os.path.join(service_dir, "spool")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [os.path.relpath(os.path.join(folder, n), service_dir) for n in names
                  if any(mark in n for mark in QUARANTINE_MARKS) and not n.endswith(("-wal", "-shm"))]
    return sorted(found)


def take(service_dir: str, outbox: Any = None, *, open_outbox: bool = False, skip: str | None = None) -> Waiting:
    """Count what waits in the store at ``service_dir``. ``outbox``: an open ``Outbox`` to
    count (else, with ``open_outbox``, one is opened if ``cache.db`` exists). Never raises:
    an unreadable outbox leaves ``outbox`` None and says why in ``error``."""
    waiting = Waiting()
    waiting.spooled = Spool(service_dir).count_events()
    waiting.ended_journals, waiting.ending_journals, waiting.live_journals = journals(service_dir, skip=skip)
    waiting.quarantined = quarantined(service_dir)
    opened = None
    try:
        if outbox is None and open_outbox and os.path.exists(os.path.join(service_dir, "cache.db")):
            from .outbox import Outbox  # diskcache: only where the caller asked for it

            outbox = opened = Outbox(service_dir, max_events=2**62, max_bytes=2**62)
        if outbox is not None:
            waiting.outbox = outbox.pending()
            waiting.parked = len(outbox.parked())
            waiting.dead_letter = outbox.dead_count()
        elif not os.path.exists(os.path.join(service_dir, "cache.db")):
            waiting.outbox = 0
    except Exception as exc:  # OutboxError, CacheError: a corrupt or locked store
        waiting.error = f"{type(exc).__name__}: {exc}"
    finally:
        if opened is not None:
            opened.close()
    return waiting


def work_left(service_dir: str, outbox: Any = None) -> bool:
    """Is anything here for a drainer? Spool files, journals of ended or ending processes,
    or (if ``outbox`` is given) events in the outbox. Cheap enough for exit: listings and
    one non-blocking lock try per writer, no file read whole, diskcache never imported."""
    from .orphans import exiting_writers, orphans_waiting

    if Spool(service_dir).files() or orphans_waiting(service_dir) or exiting_writers(service_dir):
        return True
    try:
        return outbox is not None and outbox.pending() > 0
    except Exception:  # unreadable: say yes, a drainer will find out
        return True
