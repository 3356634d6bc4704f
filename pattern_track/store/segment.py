"""One segment file of a journal (journal.py): preallocated, memory-mapped, locked for life.

Lines are copied into a shared memory map of the file, so appending an event makes no
system call; the writer's exclusive ``flock`` lasts as long as the file is open, so the
kernel drops it when the process dies and "unlocked" means "orphaned" (orphans.py).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os

__all__ = ["FIRST_SEGMENT_BYTES", "Segment"]

#: A writer's first segment: a one-event script reserves no more than this.
FIRST_SEGMENT_BYTES = 256 * 1024


class Segment:
    """One journal file of this writer: its lock, and where the next line goes.

    Lines are copied into a shared memory map of the file (``mmap``): no system call, so
    ``track()`` never releases the GIL to a busy sender thread (with ``os.write`` its p99
    tripled). The file is preallocated (``posix_fallocate``): a full disk fails here, at
    open, never as SIGBUS on a later copy. Where preallocation is not supported, lines go
    through ``os.write`` (``O_APPEND``) instead. Either way the bytes are in the kernel's
    page cache once the call returns: the process's death cannot lose them.
    """

    __slots__ = ("path", "fd", "last_seq", "pos", "size", "map")

    def __init__(self, path: str, size: int) -> None:
        self.path, self.last_seq, self.pos, self.size, self.map = path, -1, 0, size, None
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file of ours: never waits
            try:
                os.posix_fallocate(self.fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise  # ENOSPC and the like: the journal is unusable, say so now
            else:
                self.map = mmap.mmap(self.fd, size)
        except BaseException:
            os.close(self.fd)
            os.unlink(path)
            raise

    def room(self, n: int) -> bool:
        return self.map is None or self.pos + n <= self.size

    def put(self, line: bytes) -> int:
        if self.map is not None:
            self.map[self.pos:self.pos + len(line)] = line
        else:
            os.write(self.fd, line)
        self.pos += len(line)
        return len(line)

    def unmap(self) -> None:
        """Stop writing here (rotated, or an inherited copy in a child); keep the lock."""
        if self.map is not None:
            self.map.close()
            self.map = None
            self.size = self.pos

    def close(self, *, unlink: bool) -> int:
        self.unmap()
        if unlink:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        return self.pos
