"""The write-ahead journal: every accepted event is on disk before ``track()`` returns.

Each process appends to its own files, ``<cache_dir>/journal/<writer>.<segment>.wal``,
with one ``os.write`` per event on an ``O_APPEND`` descriptor (standard library only, no
lock shared with other processes). Once ``write()`` returns the kernel holds the bytes,
so SIGKILL, SIGTERM, ``os._exit`` and crashes of the process cannot lose them; only a
power cut or kernel crash can, which ``fsync=True`` covers at ~0.25 ms per event
(pitfalls.md). The writer holds an exclusive ``flock`` on each of its segments for its
whole life: the kernel drops it when the process dies, so "unlocked" means "orphaned".

Lines are ``<seq> <event json>\\n`` (events are ASCII JSON: no newline inside) and
``!<watermark>\\n``: every event with ``seq < watermark`` is settled elsewhere (delivered,
in the outbox, dead-lettered or dropped with a count). A clean exit with nothing left
removes the files; a segment past ``segment_bytes`` rotates, and is deleted once the
watermark passes its last event. ``adopt_orphans`` (run by any drainer) moves the
unsettled events of dead writers into the outbox, in order, then deletes their files.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Callable, Iterator

from . import logs
from .cachedir import prepare_directory

__all__ = ["Journal", "JournalFull", "adopt_orphans", "exiting_writers", "orphan_count", "orphans_waiting"]

log = logs.get(__name__)

SUFFIX = ".wal"
EXIT_SUFFIX = ".exit"
#: Rotate a segment past this size; a fully settled segment is then deleted.
SEGMENT_BYTES = 4 * 2**20


class JournalFull(Exception):
    """The journal would pass its byte cap: the event is refused (and counted)."""


class Journal:
    """This process's journal. ``append`` is safe from several threads and re-entrant
    (a signal handler may call ``track()`` inside ``track()``); a forked child gets a
    writer of its own on its first append and never touches its parent's files."""

    def __init__(self, cache_dir: str, *, max_bytes: int, fsync: bool = False,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = os.path.join(cache_dir, "journal")
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._writer = ""
        self._segments: list[list] = []  # [path, fd, last_seq, bytes]; the last one is written
        self._size = 0  # bytes in this writer's live segments
        self._seq = itertools.count()
        self._segment_numbers = itertools.count()  # never reused, even after settled ones go
        self.next_seq = 0
        self.watermark = 0

    # -- writing ---------------------------------------------------------------------

    def append(self, data: bytes) -> int:
        """Write one event; return its sequence number. Raises OSError or JournalFull."""
        with self._lock:
            if self._pid != os.getpid():
                self._after_fork()
            if not self._segments:
                self._open_segment()
            seq = next(self._seq)
            line = b"%d %s\n" % (seq, data)
            if self._size + len(line) > self.max_bytes:
                raise JournalFull(f"journal holds {self._size} bytes, cap {self.max_bytes}")
            segment = self._segments[-1]
            written = os.write(segment[1], line)
            if self.fsync:
                os.fsync(segment[1])
            segment[2] = seq
            segment[3] += written
            self.next_seq = seq + 1
            self._size += written
            if segment[3] > self.segment_bytes:
                self._open_segment()
            return seq

    def _open_segment(self) -> None:
        if not self._writer:
            # The cache holds users' code: the directory is made private (0700), and a
            # symlink or a directory of another user is refused, as for the outbox.
            prepare_directory(os.path.dirname(self.directory))
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._writer = f"{os.getpid()}-{os.urandom(4).hex()}"
        path = os.path.join(self.directory, f"{self._writer}.{next(self._segment_numbers):06d}{SUFFIX}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file of ours: never waits
        except OSError:
            os.close(fd)
            raise
        self._segments.append([path, fd, -1, 0])

    def reinit_after_fork(self) -> None:
        """In a child (lifecycle's fork hook): a fresh lock, none of the parent's files."""
        self._lock = threading.RLock()
        self._after_fork()

    def _after_fork(self) -> None:
        """In a child: drop the inherited descriptors (the parent keeps its lock), start anew."""
        for segment in self._segments:
            try:
                fd = segment[1]
                os.close(fd)
            except OSError:
                pass
        self._reset()

    def ack(self, watermark: int) -> None:
        """Record that every event with ``seq < watermark`` is settled; drop settled segments."""
        with self._lock:
            if watermark <= self.watermark or self._pid != os.getpid() or not self._segments:
                return
            self.watermark = watermark
            os.write(self._segments[-1][1], b"!%d\n" % watermark)
            while len(self._segments) > 1 and self._segments[0][2] < watermark:
                path, fd = self._segments.pop(0)[:2]
                self._size -= _unlink_and_close(path, fd)

    def mark_exiting(self) -> None:
        """Leave ``<writer>.exit`` beside the journal: a drainer keeps going until it can
        adopt this journal (the process is about to end with events unsettled)."""
        with self._lock:
            if self._writer and self._pid == os.getpid():
                try:
                    os.close(os.open(os.path.join(self.directory, self._writer + EXIT_SUFFIX),
                                     os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
                except OSError:
                    pass

    def settled(self) -> bool:
        return self.watermark >= self.next_seq

    def close(self) -> bool:
        """Remove the files if everything is settled (then True); else leave them for a drainer."""
        with self._lock:
            if self._pid != os.getpid():
                return False
            done = self.settled()
            for path, fd, *_ in self._segments:
                if done:
                    _unlink_and_close(path, fd)
            if done:
                self._segments = []
                self._size = 0
            return done

    def read_since(self, first: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` of this writer's own events with ``seq >= first``, in order (to
        refill memory after an overflow left events only here)."""
        with self._lock:
            paths = [s[0] for s in self._segments]
        out: list[tuple[int, bytes]] = []
        for path in paths:
            for seq, data in _events(path):
                if seq >= first:
                    out.append((seq, data))
                    if len(out) >= limit:
                        return out
        return out


def _unlink_and_close(path: str, fd: int) -> int:
    try:
        size = os.fstat(fd).st_size
        os.unlink(path)
    except OSError:
        size = 0
    try:
        os.close(fd)
    except OSError:
        pass
    return size


def _lines(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return
    for line in data.split(b"\n")[:-1]:  # a torn last line has no newline: skipped
        yield line


def _events(path: str) -> Iterator[tuple[int, bytes]]:
    for line in _lines(path):
        head, _, data = line.partition(b" ")
        if head.isdigit() and data.startswith(b"{"):
            yield int(head), data


def _watermark(path: str) -> int:
    marks = [int(line[1:]) for line in _lines(path) if line.startswith(b"!") and line[1:].isdigit()]
    return max(marks, default=0)


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


def orphans_waiting(cache_dir: str) -> int:
    """Journals whose writer is gone (their first segment is not locked): work for a drainer.
    Cheap enough for exit: one listdir and one non-blocking lock try per writer."""
    waiting = 0
    for paths in _writers(os.path.join(cache_dir, "journal")).values():
        try:
            fd = os.open(paths[0], os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            waiting += 1
        except OSError:
            pass
        finally:
            os.close(fd)  # closing drops the lock we may have taken
    return waiting


def adopt_orphans(cache_dir: str, append: Callable[[list], int]) -> int:
    """Move the unsettled events of dead writers into the outbox via ``append(events) ->
    taken``, oldest writer first, and delete their files; return how many moved.

    A writer is dead when none of its segments is locked. The adopter holds those locks
    while it works, and skips a file already unlinked by a rival adopter, so each
    journal is adopted once. If the outbox takes only part (its cap), the rest stays,
    with a watermark saying what moved.
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
