"""Helpers shared by the tests and the benchmark."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

__all__ = ["drainer_pids", "eventually", "kill_drainers"]


def drainer_pids(root: str) -> list[int]:
    """Detached ``pattern_track drain`` processes whose cache dir lies under ``root``."""
    pids = []
    marks = (b"PATTERN_CACHE_DIR=" + root.encode(), b"PATTERN_TRACK_CACHE_DIR=" + root.encode())
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            if b"pattern_track" not in cmd or b"drain" not in cmd:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if any(var.startswith(mark) for var in environ for mark in marks):
            pids.append(int(name))
    return pids


def kill_drainers(root: str) -> int:
    killed = 0
    for pid in drainer_pids(root):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed


def eventually(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (a bounded wait on
    state another thread or process changes; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)


def kept_event_ids(cache_dir: str) -> set:
    """Ids of every undelivered event kept on disk: outbox, spool and journals.

    Kill the cache's drainers first (``kill_drainers``) so nothing moves while counting;
    an event caught between two stores is counted once (a set of ids).
    """
    import json

    from pattern_track.delivery.batches import event_id_from
    from pattern_track.store.orphans import _events, _watermark, _writers
    from pattern_track.store.outbox import Outbox
    from pattern_track.store.services import known
    from pattern_track.store.spool import Spool

    ids = set()
    # Every service's store, and a legacy store in the cache directory itself.
    for directory in [cache_dir, *known(cache_dir).values()]:
        if os.path.exists(os.path.join(directory, "cache.db")):
            box = Outbox(directory, max_events=10**9, max_bytes=10**12)
            for chunk in box.chunks():
                ids.update(event_id_from(e) for e in chunk.events)
            ids.update(event_id_from(entry["event"]) for entry in box.parked())
            box.close()
        for path in Spool(directory).files():
            with open(path, encoding="utf-8") as handle:
                ids.update(event_id_from(t.encode()) for t in json.load(handle))
        for paths in _writers(os.path.join(directory, "journal")).values():
            mark = max(_watermark(p) for p in paths)
            ids.update(event_id_from(data) for p in paths for seq, data in _events(p) if seq >= mark)
    return ids


def store_dir(cache_dir: str, url: str = "http://localhost:8053") -> str:
    """The store of service ``url`` inside ``cache_dir`` (created, private), where a
    tracker, hook, drainer or sync for ``url`` keeps its outbox, journals and spool."""
    from pattern_track.store.services import prepare, service_dir

    return prepare(service_dir(cache_dir, url), url)
