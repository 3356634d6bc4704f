"""Journals as files: reading them, and adopting those of ended processes.

Segment files are ``<store>/journal/<writer>.<segment>.wal`` (journal.py writes them);
lines are ``<seq> <event json>\\n`` and acknowledgements ``!<watermark>\\n``. A writer
holds an ``flock`` on each of its segments for its whole life, so a journal none of
whose segments is locked belongs to a process that has ended: any drainer adopts it
(``adopt_orphans``), moving its unsettled events into the outbox in order, then deleting
it. ``<writer>.exit`` marks a writer that ended with events left (handed off).
"""

from __future__ import annotations

import fcntl
import os

from .. import logs

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["adopt_orphans", "exiting_writers", "orphan_count", "orphans_waiting", "unsettled_count"]

log = logs.get(__name__)

SUFFIX = ".wal"
EXIT_SUFFIX = ".exit"


def _lines(path: str) -> Iterator[bytes]:
    """Complete lines of a segment. The unwritten rest of a preallocated file is NUL bytes
    (never inside a line: events are ASCII JSON); a run of them ends a written part, and
    its last line, if it has no newline, was torn by a crash and is skipped. A drainer's
    appended acknowledgement, after the NULs, is read as a part of its own."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return
    for part in data.split(b"\0"):
        if part:
            yield from part.split(b"\n")[:-1]


def _events(path: str) -> Iterator[tuple[int, bytes]]:
    for line in _lines(path):
        head, _, data = line.partition(b" ")
        if head.isdigit() and data.startswith(b"{"):
            yield int(head), data


def _watermark(path: str) -> int:
    marks = [int(line[1:]) for line in _lines(path) if line.startswith(b"!") and line[1:].isdigit()]
    return max(marks, default=0)


def _doubt_lines(path: str) -> list[list[str]]:
    """The writer's in-doubt marks (``?<id> <id>...`` lines): one list of ids per request, in order."""
    return [line[1:].decode("ascii", "replace").split() for line in _lines(path) if line.startswith(b"?")]


def _writers(directory: str) -> dict[str, list[str]]:
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX))
    except OSError:
        return {}
    writers: dict[str, list[str]] = {}
    for name in names:
        writers.setdefault(name.split(".")[0], []).append(os.path.join(directory, name))
    return writers


def exiting_writers(cache_dir: str) -> int:
    """Writers that said they are ending with events unsettled and are not adopted yet."""
    directory = os.path.join(cache_dir, "journal")
    try:
        markers = [n[:-len(EXIT_SUFFIX)] for n in os.listdir(directory) if n.endswith(EXIT_SUFFIX)]
    except OSError:
        return 0
    writers = _writers(directory)
    for writer in markers:
        if writer not in writers:  # adopted (or settled) since: the marker is stale
            try:
                os.unlink(os.path.join(directory, writer + EXIT_SUFFIX))
            except OSError:
                pass
    return sum(writer in writers for writer in markers)


def orphan_count(cache_dir: str) -> int:
    """How many segment files lie in the journal directory (live writers included)."""
    return sum(len(p) for p in _writers(os.path.join(cache_dir, "journal")).values())


def unsettled_count(cache_dir: str, *, ended_only: bool = False) -> int:
    """Events in the journals of ``cache_dir`` past their watermark: every writer's, or
    (``ended_only``) only those of ended processes, which wait for a drainer."""
    total = 0
    for paths in _writers(os.path.join(cache_dir, "journal")).values():
        if ended_only and not _ended(paths[0]):
            continue
        watermark = max(_watermark(p) for p in paths)
        total += len({seq for path in paths for seq, _ in _events(path) if seq >= watermark})
    return total


def _ended(first_segment: str) -> bool:
    """Has the writer of this segment ended (no lock held on it)? One non-blocking try."""
    try:
        fd = os.open(first_segment, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the lock we may have taken


def orphans_waiting(cache_dir: str) -> int:
    """Journals whose writer is gone (their first segment is not locked): work for a drainer.
    Cheap enough for exit: one listdir and one non-blocking lock try per writer."""
    return sum(_ended(paths[0]) for paths in _writers(os.path.join(cache_dir, "journal")).values())


def adopt_orphans(cache_dir: str, append: Callable[[list], int],
                  in_doubt: Callable[[list], object] | None = None) -> int:
    """Move the unsettled events of dead writers into the outbox via ``append(events) ->
    taken``, oldest writer first, and delete their files; return how many moved.

    A writer is dead when none of its segments is locked. The adopter holds those locks
    while it works, and skips a file already unlinked by a rival adopter, so each
    journal is adopted once. If the outbox takes only part (its cap), the rest stays,
    with a watermark saying what moved. ``in_doubt(ids)`` is told which of the moved
    events the writer marked in doubt (its request was cut: the service may have them).
    """
    moved = 0
    for writer, paths in _writers(os.path.join(cache_dir, "journal")).items():
        fds = []
        try:
            for path in paths:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
                fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_nlink == 0:
                    raise BlockingIOError("adopted by another drainer")
        except OSError:
            for fd in fds:
                os.close(fd)
            continue  # alive (locked), gone, or taken by a rival: not ours to adopt
        try:
            watermark = max(_watermark(p) for p in paths)
            seen: set[int] = set()
            events = []
            for path in paths:
                for seq, data in _events(path):
                    if seq >= watermark and seq not in seen:
                        seen.add(seq)
                        events.append((seq, data))
            taken = append([data for _, data in events]) if events else 0
            moved += taken
            if in_doubt is not None and taken:
                from ..event import event_id_from

                moved_ids = {event_id_from(data) for _, data in events[:taken]}
                for request in (r for p in paths for r in _doubt_lines(p)):
                    if any(i in moved_ids for i in request):
                        in_doubt([i for i in request if i in moved_ids])
            if taken < len(events):
                os.write(fds[-1], b"!%d\n" % events[taken][0])
                log.warning("outbox full: %d journal events of a finished process wait", len(events) - taken)
                continue
            for path in paths:
                os.unlink(path)
            try:
                os.unlink(os.path.join(os.path.dirname(paths[0]), writer + EXIT_SUFFIX))
            except OSError:
                pass
            if events:
                log.info("adopted %d events from the journal of a finished process", taken)
        finally:
            for fd in fds:
                os.close(fd)
    return moved
