"""Shared fixtures: a real loopback collector, a private cache directory, trackers that close."""

from __future__ import annotations

import os
import sys

import pytest

from pattern_track import Tracker
from pattern_track.collector import Collector
from tests.helpers import drainer_pids, kill_drainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Hook payload samples (one Claude Code session, copied from the project's shared/ folder).
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hook-payloads")


@pytest.fixture
def collector():
    with Collector() as c:
        yield c


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


@pytest.fixture(autouse=True)
def no_drainer_outlives_its_test(tmp_path_factory):
    """Detached drainers live while anything they could deliver waits (for ever, for a
    service a test stopped): kill every drainer of this session's caches after each test."""
    yield
    kill_drainers(str(tmp_path_factory.getbasetemp()))


@pytest.fixture
def make_tracker(cache_dir):
    made = []

    def make(url, **options):
        options.setdefault("cache_dir", cache_dir)
        options.setdefault("health_check_interval_s", 60.0)
        # In-process tests check this process's own behaviour: no detached drainer races it
        # for the store (the subprocess tests exercise the hand-off).
        options.setdefault("handoff", False)
        tracker = Tracker(url, **options)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close(timeout=1.0)


@pytest.fixture
def reap_drainers(cache_dir):
    """Kill the detached drainers a test's hooks started, so none outlives its test."""
    yield lambda: drainer_pids(cache_dir)
    kill_drainers(cache_dir)


@pytest.fixture
def env(cache_dir, reap_drainers):
    """Environment for subprocesses: this checkout importable, a private cache."""
    ours = ("PATTERN_", "INTELLIGENCE_", "CIRCUIT_", "HEALTH_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, environ.get("PYTHONPATH")) if p)
    environ["PATTERN_CACHE_DIR"] = cache_dir
    return environ


PYTHON = sys.executable


@pytest.fixture
def small_mount(tmp_path):
    """``mount(options)``: a tmpfs at a fresh path (``size=256k,ro``, ...), unmounted after
    the test, or a skip where mounting needs privileges this run lacks."""
    import subprocess

    target = tmp_path / "mnt"
    target.mkdir()

    def mount(options, path=target):
        path.mkdir(exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
        mounted.append(path)
        return str(path)

    mounted: list = []
    yield mount
    kill_drainers(str(tmp_path))
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path):
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
