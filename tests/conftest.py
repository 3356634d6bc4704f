"""Shared fixtures: a real loopback collector, a private cache directory, trackers that close."""

from __future__ import annotations

import os
import sys

import pytest

from pattern_track import Tracker
from pattern_track.collector import Collector

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "..", "shared", "fixtures", "hook-payloads")


@pytest.fixture
def collector():
    with Collector() as c:
        yield c


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture
def make_tracker(cache_dir):
    made = []

    def make(url, **options):
        options.setdefault("cache_dir", cache_dir)
        options.setdefault("health_check_interval_s", 60.0)
        tracker = Tracker(url, **options)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close(timeout=1.0)


def _drainers_for(cache_dir):
    """Pids of detached drainers started for ``cache_dir`` (read from /proc)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
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
        if f"PATTERN_TRACK_CACHE_DIR={cache_dir}".encode() in environ:
            pids.append(int(name))
    return pids


@pytest.fixture
def reap_drainers(cache_dir):
    """Kill the detached drainers a test's hooks started, so none outlives its test."""
    yield lambda: _drainers_for(cache_dir)
    import signal

    for pid in _drainers_for(cache_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def env(cache_dir, reap_drainers):
    """Environment for subprocesses: this checkout importable, a private cache."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PATTERN_", "INTELLIGENCE_", "CIRCUIT_", "HEALTH_"))}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, environ.get("PYTHONPATH")) if p)
    environ["PATTERN_CACHE_DIR"] = cache_dir
    return environ


PYTHON = sys.executable
