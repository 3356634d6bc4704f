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
