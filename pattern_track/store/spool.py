"""The spool: the outbox's stdlib-only front door, for short processes and bad days.

A spool file is one JSON array of serialised events, written to a temporary name and
renamed into ``<cache_dir>/spool/`` (atomic: a reader never sees half a file), mode
0600. Names sort by time (``<ns>-<pid>-<random>.json``) so ingestion keeps order.

The Claude Code hook writes here because it must finish in milliseconds and never wait
on SQLite's locks (opening a diskcache while another process writes can block for a
minute); a tracker whose outbox cannot be written falls back here too. Drainers move
spool files into the outbox (``ingest``); deletion happens only after the outbox write,
so a crash in between repeats a chunk rather than losing it.
"""

from __future__ import annotations

import os
import time

from .. import logs

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["Spool"]

log = logs.get(__name__)

SUFFIX = ".json"


class Spool:
    def __init__(self, cache_dir: str, prepare: Callable[[], object] | None = None) -> None:
        self.directory = os.path.join(cache_dir, "spool")
        #: Makes the store private and refuses an unsafe one (a symlink, another user's)
        #: before a write: the spool holds users' code, as the outbox does.
        self._prepare = prepare

    def write(self, events: Iterable[bytes]) -> str:
        """Durably add one file holding ``events`` (bytes of JSON each); return its path.

        Raises OSError when the directory cannot be written, ``CacheError`` when it is
        unsafe.
        """
        import json  # here, not at import: a short script's exit lists the spool without it

        texts = [e.decode("utf-8") for e in events]
        if self._prepare is not None:
            self._prepare()
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        final = os.path.join(self.directory, name + SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(texts, handle, ensure_ascii=False)
            # No fsync: the rename makes it crash-safe for the process, which is the
            # promise; surviving power loss would cost every hook call milliseconds.
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return final

    def files(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:  # missing, or the cache path is unusable (counted elsewhere)
            return []
        return sorted(os.path.join(self.directory, n) for n in names if n.endswith(SUFFIX) and not n.startswith("."))

    def count_events(self) -> int:
        """Events waiting in spool files; a file that is not a list of events counts 0
        (``ingest`` sets it aside and logs it)."""
        import json

        total = 0
        for path in self.files():
            try:
                with open(path, encoding="utf-8") as handle:
                    texts = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(texts, list):
                total += len(texts)
        return total

    def ingest(self, append: Callable[[list], int], *, limit: int = 1000) -> int:
        """Move up to ``limit`` spool files into the outbox via ``append(events) -> taken``.

        Stops at the first file the outbox cannot take whole (full), keeping its rest in
        place, so order is kept and nothing is ingested twice. A file that is
        not valid JSON is set aside as ``*.bad`` and logged, never silently deleted.
        Returns the number of events moved.
        """
        import json

        moved = 0
        for path in self.files()[:limit]:
            try:
                with open(path, encoding="utf-8") as handle:
                    texts = json.load(handle)
                if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                    raise ValueError("not a list of events")
            except FileNotFoundError:
                continue  # another drainer took it
            except (OSError, ValueError) as exc:
                log.warning("spool file %s unreadable (%s); set aside", os.path.basename(path), exc)
                try:
                    os.replace(path, path + ".bad")
                except OSError:
                    pass
                continue
            events = [t.encode("utf-8") for t in texts]
            taken = append(events)
            moved += taken
            if taken < len(events):
                self._rewrite(path, texts[taken:])
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return moved

    def _rewrite(self, path: str, texts: list) -> None:
        import json

        tmp = path + ".rest.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(texts, handle)
        os.replace(tmp, path)
