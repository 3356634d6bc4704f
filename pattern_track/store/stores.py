"""What waits in other services' stores and in a legacy store; adopting a legacy store.

``stats`` and ``sync`` show other services' waiting events separately (services.py): a
sync for one service never touches them. A legacy store (one cache directory for every
service, before per-service stores) cannot say which service its events were for; it is
reported until the user names one with ``pattern-track sync --adopt-legacy``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from .. import logs
from .orphans import adopt_orphans, unsettled_count
from .services import known, legacy_paths
from .spool import Spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["waiting", "elsewhere", "legacy_waiting", "adopt_legacy"]

log = logs.get(__name__)

_UNCAPPED = 2**62


def _open(directory: str) -> Any:
    from .outbox import Outbox

    return Outbox(directory, max_events=_UNCAPPED, max_bytes=_UNCAPPED)


def waiting(directory: str) -> dict[str, int]:
    """``{pending, spooled, journal, dead_letter}`` of the store in ``directory``: events in
    its outbox (parked ones included), in spool files, in journals past their watermark,
    and its dead letters. Opens nothing that does not exist. Raises ``OutboxError``."""
    counts = {"pending": 0, "spooled": Spool(directory).count_events(),
              "journal": unsettled_count(directory), "dead_letter": 0}
    if os.path.exists(os.path.join(directory, "cache.db")):
        outbox = _open(directory)
        try:
            counts["pending"], counts["dead_letter"] = outbox.pending(), outbox.dead_count()
        finally:
            outbox.close()
    return counts


def elsewhere(cache_dir: str, own_dir: str) -> dict[str, dict[str, Any]]:
    """``{base URL: waiting(...)}`` for every other service under ``cache_dir`` that has
    something waiting or dead-lettered; a store that cannot be read says
    ``{"error": ...}`` instead of breaking the caller."""
    found: dict[str, dict[str, Any]] = {}
    own = os.path.abspath(own_dir)
    for url, directory in known(cache_dir).items():
        if os.path.abspath(directory) == own:
            continue
        try:
            counts = waiting(directory)
        except Exception as exc:  # a corrupt or locked store of another service
            found[url] = {"error": type(exc).__name__}
            continue
        if any(counts.values()):
            found[url] = counts
    return found


def legacy_waiting(cache_dir: str) -> dict[str, Any] | None:
    """``waiting()`` of a legacy store in ``cache_dir``; None when there is none."""
    if not legacy_paths(cache_dir):
        return None
    try:
        return waiting(os.path.abspath(os.path.expanduser(cache_dir)))
    except Exception as exc:
        return {"error": type(exc).__name__}


def adopt_legacy(cache_dir: str, outbox: Any, *, chunk_size: int) -> dict[str, int]:
    """Move a legacy store's events (outbox chunks in order, parked events, dead letters,
    journals of ended processes, spool files) into ``outbox``, the store of the service
    the user named. Each chunk is written to ``outbox`` before it is removed from the
    legacy store, so a crash repeats events and never loses one. Stops (what is left stays)
    when ``outbox`` reaches its cap. Returns ``{moved, dead_letters, left, busy}``;
    ``busy``: another process is adopting it (one at a time), nothing done. Raises
    ``OutboxError``."""
    root = os.path.abspath(os.path.expanduser(cache_dir))
    # One adoption at a time, whichever service it is for: two would both send it all.
    lock = os.open(os.path.join(root, "legacy-adopt.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("legacy store: another process is adopting it")
            return {"moved": 0, "dead_letters": 0, "left": -1, "busy": True}
        return _adopt_locked(root, outbox, chunk_size)
    finally:
        os.close(lock)


def _adopt_locked(root: str, outbox: Any, chunk_size: int) -> dict:
    moved = dead = 0

    def append(events: list) -> int:
        return outbox.append_chunks(events, chunk_size=chunk_size)

    full = False
    if os.path.exists(os.path.join(root, "cache.db")):
        legacy = _open(root)
        try:
            for chunk in list(legacy.chunks()):
                taken = append(chunk.events)
                moved += taken
                legacy.settle(chunk, chunk.events[taken:], chunk.attempts[taken:])
                if taken < len(chunk.events):
                    full = True
                    break
            parked = legacy.parked()
            if parked and not full:
                taken = append([entry["event"] for entry in parked])
                moved += taken
                legacy.set_parked(parked[taken:], moved_out=[e["event"] for e in parked[:taken]])
                full = taken < len(parked)
            letters = legacy.dead_letters()
            for _, value in letters:
                outbox.add_dead(value["event"], value.get("reason", "legacy"), value.get("detail", ""))
            dead = legacy.remove_dead([key for key, _ in letters])
        finally:
            legacy.close()
    if not full:
        moved += adopt_orphans(root, append) + Spool(root).ingest(append)
    left = legacy_waiting(root) or {}
    remaining = sum(v for k, v in left.items() if k != "dead_letter" and isinstance(v, int))
    if remaining == 0 and not left.get("dead_letter"):
        for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
        for name in ("journal", "spool"):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, name))
    log.info("legacy store: %d events and %d dead letters adopted, %d left", moved, dead, remaining)
    return {"moved": moved, "dead_letters": dead, "left": remaining, "busy": False}
