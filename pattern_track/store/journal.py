"""The write-ahead journal: every accepted event is on disk before ``track()`` returns.

Each process appends to its own files, ``<store>/journal/<writer>.<segment>.wal``, by
copying each line into a memory-mapped, preallocated segment (segment.py: no lock shared
with other processes, no system call per event). The bytes are then in the kernel's page
cache: SIGKILL, SIGTERM, ``os._exit`` and crashes cannot lose them; only a power cut or a
kernel crash can, which ``fsync=True`` covers at ~0.25 ms per event (pitfalls.md).

Lines are ``<seq> <event json>\\n`` (events are ASCII JSON: no newline inside),
``?<event id> ...\\n`` (events whose request went: the service may have them) and
``!<watermark>\\n``: every event with ``seq < watermark`` is settled elsewhere (delivered,
in the outbox, dead-lettered or dropped with a count). A clean exit with nothing left
removes the files; a full segment rotates and goes once the watermark passes it.
orphans.py reads the files and adopts the journals of ended writers.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading

from .. import logs
from .cachedir import prepare_directory

# Re-exported, one import for both sides: orphans.py reads journal files, segment.py is one (tests patch it here).
from .orphans import (
    EXIT_SUFFIX,
    SUFFIX,
    _events,
    adopt_orphans,
    exiting_writers,
    orphan_count,
    orphans_waiting,
    unsettled_count,
)
from .segment import FIRST_SEGMENT_BYTES, Segment as _Segment

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Journal", "JournalFull", "adopt_orphans", "exiting_writers", "orphan_count", "orphans_waiting",
           "unsettled_count"]

log = logs.get(__name__)

#: Rotate a segment past this size; a fully settled segment is then deleted.
SEGMENT_BYTES = 4 * 2**20


class JournalFull(Exception):
    """The journal would pass its byte cap: the event is refused (and counted)."""


class Journal:
    """This process's journal. ``append`` is safe from several threads and re-entrant
    (a signal handler may call ``track()`` inside ``track()``); a forked child gets a
    writer of its own on its first append and never touches its parent's files."""

    def __init__(self, cache_dir: str, *, max_bytes: int, fsync: bool = False,
                 segment_bytes: int = SEGMENT_BYTES, prepare: Callable[[], object] | None = None) -> None:
        self.directory = os.path.join(cache_dir, "journal")
        #: Makes ``cache_dir`` (private) before the first segment; default prepare_directory.
        self._prepare = prepare or (lambda: prepare_directory(cache_dir))
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._writer = ""
        self._segments: list[_Segment] = []  # the last one is written
        self._size = 0  # bytes written to this writer's live segments
        self._seq = itertools.count()
        self._segment_numbers = itertools.count()  # never reused, even after settled ones go
        self._writing = False  # inside append(): a nested (signal handler) call queues
        self._nested: collections.deque[bytes] = collections.deque()
        self.next_seq = 0
        self.watermark = 0
        #: Ids of events whose request may have stored them (``mark_in_doubt``).
        self.doubt_ids: set[str] = set()

    # -- writing ---------------------------------------------------------------------

    def append(self, data: bytes, then: Callable[[int], object] | None = None) -> int:
        """Write one event; return its sequence number. Raises OSError or JournalFull.

        ``then(seq)`` runs before the lock is released (the tracker hands the event to
        memory there): an acknowledgement, computed under the same lock (``ack_with``),
        can never cover an event that is in the journal but not yet in memory.

        Re-entrant: a signal handler's ``track()`` runs on the thread it interrupts, in
        the middle of this very call (the RLock lets it in). Such a nested call only takes
        a number (one C call) and queues its line; the outer call writes its own line and
        then every queued one before it returns, so no line is overwritten or lost.
        """
        with self._lock:
            if self._writing:
                seq = next(self._seq)
                self._nested.append(b"%d %s\n" % (seq, data))
                if then is not None:
                    then(seq)
                return seq
            if self._pid != os.getpid():
                self._after_fork()
            self._writing = True
            try:
                # The cap is checked before a number is taken (22 bytes: the longest number,
                # a space and a newline): a refused event leaves no hole in the sequence,
                # which memory's count of journal-only events relies on.
                if self._size + len(data) + 22 > self.max_bytes:
                    raise JournalFull(f"journal holds {self._size} bytes, cap {self.max_bytes}")
                seq = next(self._seq)
                line = b"%d %s\n" % (seq, data)
                self._write(seq, line)
                self._write_nested()
                if then is not None:
                    then(seq)
                return seq
            finally:
                self._writing = False

    def _write(self, seq: int, line: bytes) -> None:
        segment = self._put(line)
        if self.fsync:
            os.fsync(segment.fd)
        segment.last_seq = max(segment.last_seq, seq)
        self.next_seq = max(self.next_seq, seq + 1)

    def _write_nested(self) -> None:
        while self._nested:
            line = self._nested.popleft()
            self._write(int(line[:line.index(b" ")]), line)

    def _put(self, line: bytes) -> _Segment:
        if not self._segments or not self._segments[-1].room(len(line)):
            self._open_segment(len(line))
        segment = self._segments[-1]
        self._size += segment.put(line)
        return segment

    def _open_segment(self, need: int) -> None:
        if not self._writer:
            # The cache holds users' code: the directory is made private (0700), and a
            # symlink or a directory of another user is refused, as for the outbox.
            self._prepare()
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._writer = f"{os.getpid()}-{os.urandom(4).hex()}"
        number = next(self._segment_numbers)
        # Small first (a one-event script reserves little), then segment_bytes; room for
        # the line, and for the acknowledgements that follow it.
        first = min(FIRST_SEGMENT_BYTES, self.segment_bytes)
        size = max(first if number == 0 else self.segment_bytes, need + 4096)
        path = os.path.join(self.directory, f"{self._writer}.{number:06d}{SUFFIX}")
        segment = _Segment(path, size)
        if self._segments:
            self._segments[-1].unmap()  # rotated: written no more, its lock kept until settled
        self._segments.append(segment)

    def reinit_after_fork(self) -> None:
        """In a child (lifecycle's fork hook): a fresh lock, none of the parent's files."""
        self._lock = threading.RLock()
        self._after_fork()

    def _after_fork(self) -> None:
        """In a child: unmap and close the inherited copies (the parent keeps its lock and
        its map: a child writing there would corrupt the parent's journal), start anew."""
        for segment in self._segments:
            segment.close(unlink=False)
        self._reset()

    def ack_with(self, watermark: Callable[[], int | None]) -> None:
        """``ack(watermark())``, computed under the journal's lock (see ``append``)."""
        with self._lock:
            value = watermark()
            if value is not None:
                self.ack(value)

    def ack(self, watermark: int) -> None:
        """Record that every event with ``seq < watermark`` is settled; drop settled segments."""
        with self._lock:
            if watermark <= self.watermark or self._pid != os.getpid() or not self._segments:
                return
            if self._writing:
                return  # inside an append on this thread (a signal handler): the next ack records it
            self.watermark = watermark
            self._writing = True  # a signal handler's append meanwhile queues (see append)
            try:
                self._put(b"!%d\n" % watermark)
                self._write_nested()
                while len(self._segments) > 1 and self._segments[0].last_seq < watermark:
                    self._size -= self._segments.pop(0).close(unlink=True)
            finally:
                self._writing = False

    def mark_in_doubt(self, ids: list[str], *, sending: bool = False) -> None:
        """``?<id> <id>...``: the service may have these events (their request was cut at
        exit; or, ``sending``, is about to go: a death before the answer cannot say so).
        A drainer adopting them asks the read route first (store/doubt.py). Raises OSError."""
        ids = [i for i in ids if i and i != "?" and i.isalnum()]
        if not ids:
            return
        with self._lock:
            if self._pid != os.getpid() or self._writing:
                return
            if not sending:  # a request about to go is settled by its answer: nothing to keep
                self.doubt_ids.update(ids)
            self._writing = True
            try:
                self._put(b"?" + " ".join(ids).encode("ascii") + b"\n")
                self._write_nested()
            finally:
                self._writing = False

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
        """Remove the files if everything is settled (then True); else leave them for a
        drainer, unlocked: a process that goes on after ``close()`` must not keep its
        unsettled journal from being adopted (its locks would say "alive")."""
        with self._lock:
            if self._pid != os.getpid():
                return False
            done = self.settled()
            for segment in self._segments:
                segment.close(unlink=done)
            self._segments = []
            self._size = 0
            return done

    def read_since(self, first: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` of this writer's own events with ``seq >= first``, in order (to
        refill memory after an overflow left events only here)."""
        with self._lock:
            # Settled segments not yet deleted are skipped unread (each holds up to 4 MiB).
            paths = [s.path for s in self._segments if s.last_seq >= first]
        out: list[tuple[int, bytes]] = []
        for path in paths:
            for seq, data in _events(path):
                if seq >= first:
                    out.append((seq, data))
                    if len(out) >= limit:
                        return out
        return out
