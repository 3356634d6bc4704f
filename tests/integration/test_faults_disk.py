"""Disk faults: the caller is never raised at or blocked; what can be kept is kept, the rest counted."""

import os
import subprocess
import time

import pytest

from pattern_track.collector import Collector
from tests.conftest import PYTHON
from tests.helpers import store_dir
from tests.integration.test_faults_process import ids_on_disk
from tests.integration.test_tracker_live import counts_add_up

SCRIPT = r"""
import sys, time
from pattern_track import Tracker
url, cache = sys.argv[1], sys.argv[2]
tracker = Tracker(url, cache_dir=cache, connect_timeout_s=0.3)
ids = [tracker.track("pattern_created", pattern_id=f"d{i}", pattern_data={"code": str(i)}) for i in range(10)]
assert None not in ids
print(" ".join(ids), time.monotonic(), flush=True)
"""


def closed_url():
    probe = Collector().start()
    url = probe.url
    probe.stop()
    return url


def run_script(url, cache_dir, env):
    proc = subprocess.run([PYTHON, "-c", SCRIPT, url, cache_dir], capture_output=True, env=env, timeout=60)
    exited = time.monotonic()
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    *ids, done = proc.stdout.decode().split()
    return ids, exited - float(done)


def test_corrupt_database_is_set_aside_and_a_new_one_used(make_tracker, cache_dir):
    """A corrupt cache.db is renamed cache.db.corrupt-*, logged, counted; tracking goes on."""
    url = closed_url()
    store = store_dir(cache_dir, url)  # the tracker's own store
    with open(os.path.join(store, "cache.db"), "wb") as f:
        f.write(b"this is not a database" * 100)
    tracker = make_tracker(url, connect_timeout_s=0.2)
    assert tracker.track("pattern_created", pattern_id="a", pattern_data={"code": "x"})
    assert tracker.flush(10)
    stats = tracker.stats()
    assert stats["conditions"].get("outbox_quarantined") == 1
    assert stats["pending"] == 1 and counts_add_up(stats)
    assert any(n.startswith("cache.db.corrupt-") for n in os.listdir(store))


def test_truncated_database_is_recreated(make_tracker, cache_dir):
    """A zero-byte cache.db (a crash at the wrong moment) just becomes a fresh outbox."""
    url = closed_url()
    open(os.path.join(store_dir(cache_dir, url), "cache.db"), "wb").close()
    tracker = make_tracker(url, connect_timeout_s=0.2)
    assert tracker.track("pattern_created", pattern_id="a", pattern_data={"code": "x"})
    assert tracker.flush(10) and tracker.stats()["pending"] == 1


def test_database_locked_for_long_by_another_process(cache_dir, env):
    """Another process holds the database for a minute: exit stays bounded, events go to the spool."""
    from pattern_track.store.outbox import Outbox

    url = closed_url()
    store = store_dir(cache_dir, url)  # the database the script's tracker uses
    Outbox(store, max_events=10, max_bytes=1000).close()
    holder = subprocess.Popen([PYTHON, "-c", (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"), os.path.join(store, "cache.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        ids, added = run_script(url, cache_dir, env)
        assert added < 4.0, f"exit took {added:.2f}s behind a locked database"
    finally:
        holder.communicate(b"", timeout=10)
    assert set(ids) <= ids_on_disk(cache_dir)


def test_an_unsafe_cache_path_given_in_code_is_refused_at_construction(tmp_path):
    """A symlink or a file passed as cache_dir is a clear CacheError from the constructor."""
    from pattern_track import CacheError, Tracker

    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path, tmp_path / "link")
    for path in (tmp_path / "file", tmp_path / "link"):
        with pytest.raises(CacheError):
            Tracker("http://127.0.0.1:9", cache_dir=str(path))


def test_a_file_where_the_cache_should_be(tmp_path):
    """From the environment the same mistake never raises: track() accepts, the loss at close is counted."""
    from pattern_track import Tracker

    bad = tmp_path / "file"
    bad.write_text("x")
    tracker = Tracker.from_env({"PATTERN_CACHE_DIR": str(bad), "INTELLIGENCE_SERVICE_URL": closed_url(),
                                "PATTERN_TRACK_CONNECT_TIMEOUT_S": "0.2"})
    assert tracker.track("pattern_created", pattern_id="a", pattern_data={"code": "x"})
    assert tracker.flush(10) is False  # held in memory: the outbox is unusable
    tracker.close(timeout=0)
    stats = tracker.stats()
    assert stats["conditions"].get("outbox_unavailable") == 1
    assert stats["dropped"].get("outbox_unavailable") == 1 and counts_add_up(stats)


def test_full_filesystem_never_reaches_the_caller(make_tracker, small_mount):
    """Disk full: every event is accepted or counted; track() and close() never raise."""
    root = small_mount("size=256k,mode=0700")
    with open(os.path.join(root, "filler"), "wb") as f:
        try:
            f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    tracker = make_tracker(closed_url(), cache_dir=os.path.join(root, "cache"), connect_timeout_s=0.2)
    for i in range(50):
        assert tracker.track("pattern_created", pattern_id=f"p{i}", pattern_data={"code": "x" * 500})
    tracker.flush(5)
    tracker.close(timeout=0)
    assert counts_add_up(tracker.stats())


def test_read_only_cache_directory(make_tracker, small_mount):
    """A read-only filesystem: clear condition, counted loss, no exception."""
    root = small_mount("size=256k,ro")
    tracker = make_tracker(closed_url(), cache_dir=root, connect_timeout_s=0.2)
    assert tracker.track("pattern_created", pattern_id="a", pattern_data={"code": "x"})
    tracker.flush(2)
    tracker.close(timeout=0)
    stats = tracker.stats()
    assert stats["conditions"].get("outbox_unavailable") == 1
    assert counts_add_up(stats)
