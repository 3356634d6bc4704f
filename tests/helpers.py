"""Helpers shared by the tests and the benchmark."""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["drainer_pids", "kill_drainers"]


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
