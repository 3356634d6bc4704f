"""Issue 10: one store per service in one cache directory, and a capped outbox that never
makes the service's availability worse. Real collectors on loopback, real trackers."""

import json
import os
import subprocess
import time

import pytest

from pattern_track import Tracker
from pattern_track.collector import Collector
from pattern_track.store.outbox import Outbox
from pattern_track.store.services import known, normalise_url, service_dir, service_key
from tests.conftest import PYTHON
from tests.helpers import eventually, store_dir


def pattern_ids(collector):
    return [e["pattern_id"] for e in collector.events()]


def dead_port():
    probe = Collector().start()
    port = probe.port
    probe.stop()
    return port


# -- the names ---------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("http://localhost:8053", "HTTP://LocalHost:8053/"),
    ("http://localhost", "http://localhost:80"),
    ("https://example.com/api/", "https://example.com:443/api"),
    ("http://[::1]:8053", "http://[::1]:8053/"),
    ("http://user:secret@host:1", "http://host:1"),
    ("http://localhost:08053", "http://localhost:8053"),
])
def test_one_service_however_its_url_is_written(a, b):
    assert normalise_url(a) == normalise_url(b)
    assert service_key(a) == service_key(b)


@pytest.mark.parametrize("a, b", [
    ("http://localhost:8053", "http://localhost:8054"),
    ("http://localhost:8053", "https://localhost:8053"),
    ("http://host:1/a", "http://host:1/b"),
    ("http://host-a:1", "http://host-b:1"),
])
def test_different_services_get_different_stores(a, b):
    assert service_key(a) != service_key(b)
    assert service_dir("/c", a) != service_dir("/c", b)


def test_an_upper_case_scheme_is_accepted_everywhere(env):
    """Schemes are case-insensitive: in code, in the environment, on the command line."""
    from pattern_track.config import Config

    assert Config(base_url="HTTP://127.0.0.1:9/").base_url == "http://127.0.0.1:9/"
    from_env = Config.from_env({"INTELLIGENCE_SERVICE_URL": "HTTPS://example.com"})
    assert from_env.base_url == "https://example.com" and from_env.warnings == ()
    done = subprocess.run([PYTHON, "-m", "pattern_track", "stats", "--json", "--url", "HTTP://127.0.0.1:9"],
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["service"] == "http://127.0.0.1:9"


def test_a_store_is_private_and_names_its_service(tmp_path):
    directory = store_dir(str(tmp_path / "c"), "http://Example.com:9/")
    assert directory.startswith(str(tmp_path / "c" / "services") + os.sep)
    for path in (tmp_path / "c", tmp_path / "c" / "services", directory):
        assert os.stat(path).st_mode & 0o777 == 0o700
    assert known(str(tmp_path / "c")) == {"http://example.com:9": directory}


# -- events reach only their own service ---------------------------------------------------

def test_one_service_down_does_not_stop_another_nor_receive_its_events(cache_dir):
    """A down, B up, one cache directory: B sends its own events at once, never A's; a sync
    for B leaves A's events alone and reports them; once A is up, its sync delivers them."""
    port_a = dead_port()
    url_a = f"http://127.0.0.1:{port_a}"
    opts = dict(cache_dir=cache_dir, health_check_interval_s=60.0, connect_timeout_s=0.2, linger_s=0.0,
                breaker_failure_threshold=1, handoff=False)
    with Collector() as b:
        tracker_a = Tracker(url_a, **opts)
        for i in range(5):
            assert tracker_a.track("pattern_created", pattern_id=f"for-A-{i}", pattern_data={"code": "a = 1"})
        assert tracker_a.flush(10)
        assert tracker_a.stats()["breaker"]["state"] == "open"  # A's failures opened A's breaker
        tracker_b = Tracker(b.url, **opts)
        for i in range(5):
            assert tracker_b.track("pattern_created", pattern_id=f"for-B-{i}", pattern_data={"code": "b = 1"})
        assert tracker_b.flush(10)
        stats_b = tracker_b.stats()
        assert stats_b["outcomes"]["delivered"] == 5 and stats_b["outcomes"]["outboxed"] == 0
        assert stats_b["breaker"]["state"] == "closed"
        tracker_a.close(timeout=2)  # A's process ends with its events undelivered

        assert tracker_b.sync_offline_events(timeout=5)["sync_stats"]["synced"] == 0
        done = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--url", b.url, "--cache-dir", cache_dir,
                               "--json", "--timeout", "10"], capture_output=True, timeout=60)
        doc = json.loads(done.stdout)
        assert done.returncode == 0 and doc["synced"] == 0 and doc["left"] == 0
        assert doc["other_services"][normalise_url(url_a)]["pending"] == 5
        assert tracker_b.stats()["other_services"][normalise_url(url_a)]["pending"] == 5
        assert sorted(pattern_ids(b)) == [f"for-B-{i}" for i in range(5)]
        tracker_b.close(timeout=2)

    with Collector(port=port_a) as a:
        done = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--url", a.url, "--cache-dir", cache_dir,
                               "--json", "--timeout", "20"], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stdout
        assert json.loads(done.stdout)["synced"] == 5
        assert pattern_ids(a) == [f"for-A-{i}" for i in range(5)]


def test_a_hook_writes_to_the_store_of_its_own_service(env, cache_dir, reap_drainers):
    """The hook's spool and drainer are its service's: another service's sync never sends them."""
    port = dead_port()
    env = dict(env, PATTERN_TRACK_BASE_URL=f"http://127.0.0.1:{port}")
    payload = json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Write", "session_id": "s",
                          "tool_input": {"file_path": "/p/a.py", "content": "x = 1\n"}}).encode()
    done = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], input=payload, env=env, timeout=30,
                          capture_output=True)
    assert done.returncode == 0 and done.stdout == b""
    mine = service_dir(cache_dir, f"http://127.0.0.1:{port}")
    assert eventually(lambda: os.listdir(os.path.join(mine, "spool")) or os.path.exists(
        os.path.join(mine, "cache.db")), 10)
    with Collector() as other:
        done = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--url", other.url, "--json"],
                              env=env, capture_output=True, timeout=60)
        assert json.loads(done.stdout)["synced"] == 0
        assert other.events() == []


def test_a_legacy_store_is_reported_and_adopted_only_when_asked(env, cache_dir):
    """A cache from before per-service stores cannot say which service its events were for:
    stats and sync report it; `sync --adopt-legacy` sends it to the service named."""
    box = Outbox(cache_dir, max_events=100, max_bytes=10**6)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"old-{i}",
                            "pattern_data": {"code": "x", "event_id": f"old{i}"}}).encode() for i in range(3)])
    box.close()
    with Collector() as c:
        env = dict(env, PATTERN_TRACK_BASE_URL=c.url)
        stats = subprocess.run([PYTHON, "-m", "pattern_track", "stats", "--json"], env=env, capture_output=True,
                               timeout=60)
        assert json.loads(stats.stdout)["legacy"]["pending"] == 3
        tracker = Tracker(c.url, cache_dir=cache_dir, handoff=False)
        assert tracker.stats()["legacy"]["pending"] == 3
        tracker.close(timeout=1)
        plain = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--json"], env=env, capture_output=True,
                               timeout=60)
        assert json.loads(plain.stdout)["synced"] == 0 and c.events() == []
        assert b"--adopt-legacy" in subprocess.run([PYTHON, "-m", "pattern_track", "sync"], env=env,
                                                   capture_output=True, timeout=60).stdout
        adopt = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--adopt-legacy", "--json"], env=env,
                               capture_output=True, timeout=60)
        doc = json.loads(adopt.stdout)
        assert adopt.returncode == 0 and doc["synced"] == 3 and doc["adopted_legacy"]["moved"] == 3
        assert doc["legacy"] is None and not os.path.exists(os.path.join(cache_dir, "cache.db"))
        assert pattern_ids(c) == ["old-0", "old-1", "old-2"]


# -- a full outbox ----------------------------------------------------------------------------

def fill_outbox(directory, n):
    """Another process's backlog: n events that fill the outbox to its cap, and that
    process holding the drain lease (it is draining them slowly)."""
    box = Outbox(directory, max_events=n, max_bytes=10**9)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"other-{i}",
                            "pattern_data": {"code": "o", "event_id": f"other{i}"}}).encode() for i in range(n)])
    assert box.acquire_lease("drain", "otherhost:1:rival", 600)
    return box


def test_a_full_outbox_does_not_stop_fresh_events_while_the_service_is_up(collector, cache_dir):
    """The outbox is at its cap with another process's backlog: this process's events
    still go straight to the service (none refused as outbox_full)."""
    box = fill_outbox(store_dir(cache_dir, collector.url), 50)
    tracker = Tracker(collector.url, cache_dir=cache_dir, outbox_max_events=50, linger_s=0.0,
                      health_check_interval_s=60.0, handoff=False)
    try:
        for i in range(300):
            assert tracker.track("pattern_created", pattern_id=f"fresh-{i}", pattern_data={"code": "f = 1"})
        assert tracker.flush(20)
        stats = tracker.stats()
        assert stats["dropped"] == {}
        assert stats["outcomes"]["delivered"] == 300
        assert collector.wait_for_events(300, timeout=10)
        assert pattern_ids(collector) == [f"fresh-{i}" for i in range(300)]  # in order
    finally:
        tracker.close(timeout=2)
        box.close()


def test_a_full_outbox_holds_events_in_the_journal_while_the_service_is_down(collector, cache_dir):
    """Service down and the outbox at its cap: events wait in the journal (counted as
    waiting, not refused), and all are delivered in order once room and service return."""
    directory = store_dir(cache_dir, collector.url)
    box = fill_outbox(directory, 50)
    collector.set_fault("error", status=503)
    tracker = Tracker(collector.url, cache_dir=cache_dir, outbox_max_events=50, linger_s=0.0,
                      health_check_interval_s=60.0, breaker_reset_timeout_s=0.5, backoff_base_s=0.05,
                      backoff_max_s=0.2, drain_interval_s=0.1, handoff=False)
    try:
        for i in range(100):
            assert tracker.track("pattern_created", pattern_id=f"fresh-{i}", pattern_data={"code": "f = 1"})
        assert eventually(lambda: tracker.stats()["conditions"].get("outbox_full_waits"), 20)
        stats = tracker.stats()
        assert "outbox_full" not in stats["dropped"]
        assert stats["outcomes"]["dropped_after_accept"] == 0
        collector.set_fault("none")
        box.release_lease("drain", "otherhost:1:rival")
        assert collector.wait_for_events(150, timeout=60), len(collector.events())
        fresh = [p for p in pattern_ids(collector) if p.startswith("fresh-")]
        assert fresh == [f"fresh-{i}" for i in range(100)]
        assert tracker.stats()["dropped"] == {}
    finally:
        tracker.close(timeout=2)
        box.close()


# -- nothing waits on a request in flight ------------------------------------------------------

def test_sync_is_not_held_by_a_drain_stuck_in_a_request(collector, cache_dir):
    """The drainer thread is inside a request that hangs; a spool file waits. A sync with
    timeout=1 returns within its bound instead of waiting for the request to end."""
    from pattern_track.store.spool import Spool

    directory = store_dir(cache_dir, collector.url)
    box = Outbox(directory, max_events=1000, max_bytes=10**9)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"q-{i}",
                            "pattern_data": {"code": "q", "event_id": f"q{i}"}}).encode() for i in range(5)])
    box.close()
    collector.set_fault("hang")
    tracker = Tracker(collector.url, cache_dir=cache_dir, linger_s=0.0, health_check_interval_s=60.0,
                      read_timeout_s=20.0, request_deadline_s=20.0, handoff=False)
    try:
        assert tracker.check_health() is False  # starts the drainer; health advises against
        # Health is advice: one probe goes, the drain's first batch, and it hangs.
        assert eventually(lambda: tracker.stats()["requests"] >= 1, 10)
        Spool(directory).write([json.dumps({"event_type": "pattern_created", "pattern_id": "spooled",
                                            "pattern_data": {"code": "s", "event_id": "sp"}}).encode()])
        started = time.monotonic()
        result = tracker.sync_offline_events(timeout=1)
        took = time.monotonic() - started
        assert took < 5, took
        assert result["success"] is False
    finally:
        collector.set_fault("none")
        tracker.close(timeout=2)


def test_sync_timeout_cuts_a_request_in_flight_and_blames_no_one(collector, cache_dir):
    """A service whose answers trickle (health is fine): sync_offline_events(timeout=1)
    returns in about a second, not after request_deadline_s; the cut is ours, so the
    breaker hears nothing, and the events stay."""
    directory = store_dir(cache_dir, collector.url)
    box = Outbox(directory, max_events=1000, max_bytes=10**9)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"h-{i}",
                            "pattern_data": {"code": "h", "event_id": f"h{i}"}}).encode() for i in range(5)])
    box.close()
    collector.set_fault("trickle", interval_s=5.0)
    tracker = Tracker(collector.url, cache_dir=cache_dir, health_check_interval_s=60.0, read_timeout_s=20.0,
                      request_deadline_s=20.0, breaker_failure_threshold=1, handoff=False)
    try:
        started = time.monotonic()
        result = tracker.sync_offline_events(timeout=1)
        took = time.monotonic() - started
        assert took < 4, took
        assert result["success"] is False and result["state"] == "timeout"
        stats = tracker.stats()
        assert stats["breaker"]["state"] == "closed" and stats["breaker"]["failure_count"] == 0
        assert stats["pending"] == 5
    finally:
        collector.set_fault("none")
        tracker.close(timeout=2)


def test_a_chain_that_waits_for_room_is_delivered_whole_and_in_order(collector, cache_dir):
    """A chain of 40 (each event the child of the one before) while the service fails and
    the outbox holds 12: the rest waits in the journal; once the service is back all 40
    arrive, parents first, none refused."""
    collector.set_fault("error", status=503)
    tracker = Tracker(collector.url, cache_dir=cache_dir, max_buffer_events=8, batch_size=5, linger_s=0.0,
                      backoff_base_s=0.01, backoff_max_s=0.05, breaker_reset_timeout_s=0.1, drain_interval_s=0.02,
                      health_check_interval_s=0.0, outbox_max_events=12, handoff=False)
    try:
        assert tracker.check_health()  # the network parts are up before the chain: its sends fail
        ids = [tracker.track_pattern_creation("c = 0", {"language": "python"})]
        for step in range(1, 40):
            ids.append(tracker.track_pattern_modification(ids[-1], f"c = {step}", {"language": "python"}))
        assert eventually(lambda: tracker.stats()["conditions"].get("outbox_full_waits"), 20)
        collector.set_fault("none")
        assert collector.wait_for_events(40, timeout=30)
        first = {}
        for index, event in enumerate(collector.events()):
            first.setdefault(event["pattern_id"], index)
        assert [first[p] for p in ids] == sorted(first[p] for p in ids)
        stats = tracker.stats()
        assert stats["dropped"] == {} and stats["dead_letter"] == 0
    finally:
        collector.set_fault("none")
        tracker.close(timeout=2)


@pytest.mark.parametrize("how", ["cli", "library"])
def test_an_outbox_cap_below_a_batch_still_delivers_everything(env, cache_dir, how):
    """outbox_max_events (50) below batch_size (100), service down: a script tracks 200 and
    ends. stats counts all 200 (outbox and the ended journal); one sync moves and delivers
    them all, a part at a time, in order."""
    port = dead_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(env, PATTERN_TRACK_BASE_URL=url, PATTERN_TRACK_OUTBOX_MAX_EVENTS="50",
               PATTERN_TRACK_HANDOFF="false", PATTERN_TRACK_CONNECT_TIMEOUT_S="0.2")
    script = ("from pattern_track import get_tracker\n"
              "t = get_tracker()\n"
              "for i in range(200):\n"
              "    assert t.track('pattern_created', pattern_id=f'p-{i}', pattern_data={'c': i})\n"
              "t.close(timeout=2)\n")
    done = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    with Collector(port=port) as c:
        if how == "cli":
            stats = json.loads(subprocess.run([PYTHON, "-m", "pattern_track", "stats", "--json"], env=env,
                                              capture_output=True, timeout=60).stdout)
            assert stats["pending"] + stats["journal_waiting"] == 200
            sync = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--json", "--timeout", "60"], env=env,
                                  capture_output=True, timeout=90)
            doc = json.loads(sync.stdout)
            assert sync.returncode == 0 and doc["synced"] == 200 and doc["left"] == 0, doc
        else:
            tracker = Tracker(url, cache_dir=cache_dir, outbox_max_events=50, handoff=False,
                              health_check_interval_s=60.0)
            try:
                assert tracker.stats()["pending"] == 200
                result = tracker.sync_offline_events(timeout=60)
                assert result["success"] and result["sync_stats"]["synced"] == 200, result
                assert tracker.stats()["pending"] == 0
            finally:
                tracker.close(timeout=2)
        assert pattern_ids(c) == [f"p-{i}" for i in range(200)]


def test_close_cuts_the_drainers_request_and_frees_the_lease(collector, cache_dir):
    """The drainer thread is inside a trickling request when close(0.5) is called: close
    keeps its bound, and the shared drain lease is free at once for other processes."""
    directory = store_dir(cache_dir, collector.url)
    box = Outbox(directory, max_events=1000, max_bytes=10**9)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"c-{i}",
                            "pattern_data": {"code": "c", "event_id": f"c{i}"}}).encode() for i in range(5)])
    collector.set_fault("trickle", interval_s=5.0)
    tracker = Tracker(collector.url, cache_dir=cache_dir, health_check_interval_s=60.0, read_timeout_s=20.0,
                      request_deadline_s=20.0, handoff=False)
    try:
        assert tracker.check_health()  # starts the drainer, which takes the lease and sends
        assert eventually(lambda: tracker.stats()["requests"] >= 1 and box.lease_holder("drain"), 10)
        started = time.monotonic()
        tracker.close(timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert eventually(lambda: box.lease_holder("drain") is None, 1.0)
        assert box.pending() == 5  # nothing lost; the cut request is sent again later
    finally:
        collector.set_fault("none")
        tracker.close(timeout=1)
        box.close()


def test_the_hooks_memory_of_a_file_is_per_service(env, cache_dir, reap_drainers):
    """A file written under service A, then under B: B is told of a creation, not of a
    modification whose parent only A knows (B would refuse it: parent not found)."""
    def hook(url, content):
        payload = json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Write", "session_id": "s",
                              "tool_input": {"file_path": "/p/shared.py", "content": content}}).encode()
        done = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], input=payload, timeout=30,
                              env=dict(env, PATTERN_TRACK_BASE_URL=url), capture_output=True)
        assert done.returncode == 0 and done.stdout == b""

    hook(f"http://127.0.0.1:{dead_port()}", "a = 1\n")
    with Collector() as b:
        hook(b.url, "a = 2\n")
        assert b.wait_for_events(1, timeout=20)
        (event,) = b.events()
        assert event["event_type"] == "pattern_created" and not event.get("parent_pattern_ids")


def test_two_adoptions_of_a_legacy_store_send_it_once(env, cache_dir):
    """`sync --adopt-legacy` for A and for B at the same time: each legacy event reaches
    exactly one of them, once."""
    n = 3000
    box = Outbox(cache_dir, max_events=10**6, max_bytes=10**9)
    box.append_chunks([json.dumps({"event_type": "pattern_created", "pattern_id": f"old-{i}",
                                   "pattern_data": {"code": "x", "event_id": f"old{i}"}}).encode()
                       for i in range(n)], chunk_size=100)
    box.close()
    with Collector() as a, Collector() as b:
        runs = [subprocess.Popen([PYTHON, "-m", "pattern_track", "sync", "--adopt-legacy", "--json", "--url", c.url],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in (a, b)]
        for run in runs:
            run.communicate(timeout=120)
        got = pattern_ids(a) + pattern_ids(b)
        assert len(got) == n and len(set(got)) == n


def test_sync_timeout_covers_start_up_and_says_so(env, cache_dir, collector):
    """`pattern-track sync --timeout 2` against a hung service ends within about its bound
    (start-up and the health check included) and says why events are left: the service
    did not answer its health check, or the timeout cut the request."""
    box = Outbox(store_dir(cache_dir, collector.url), max_events=100, max_bytes=10**6)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": "t",
                            "pattern_data": {"code": "t", "event_id": "t1"}}).encode()])
    box.close()
    collector.set_fault("hang")
    started = time.monotonic()
    done = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--json", "--timeout", "2", "--url", collector.url],
                          env=env, capture_output=True, timeout=60)
    took = time.monotonic() - started
    collector.set_fault("none")
    doc = json.loads(done.stdout)
    assert took < 3.5, took  # 2 s, plus start-up on a busy machine
    assert done.returncode == 1 and doc["left"] == 1 and doc["reason"] in ("timeout", "service_unhealthy"), doc


def test_what_a_closed_tracker_leaves_in_its_journal_is_adopted_while_the_process_goes_on(cache_dir):
    """Service down, outbox cap 50, 300 events, close(): 250 wait in the journal. The
    process goes on; once the service is up, a sync (here a new tracker's) delivers all 300."""
    port = dead_port()
    url = f"http://127.0.0.1:{port}"
    first = Tracker(url, cache_dir=cache_dir, outbox_max_events=50, connect_timeout_s=0.2, linger_s=0.0,
                    health_check_interval_s=60.0, handoff=False)
    for i in range(300):
        assert first.track("pattern_created", pattern_id=f"k-{i}", pattern_data={"c": i})
    first.close(timeout=1)
    with Collector(port=port) as c:
        second = Tracker(url, cache_dir=cache_dir, outbox_max_events=50, handoff=False, health_check_interval_s=60.0)
        try:
            assert second.stats()["pending"] == 300
            result = second.sync_offline_events(timeout=60)
            counts = result["sync_stats"]
            assert result["success"] and counts["failed"] == 0, result
            assert counts["total_found"] == counts["synced"] + counts["skipped"] + counts["failed"]
            assert pattern_ids(c) == [f"k-{i}" for i in range(300)]
        finally:
            second.close(timeout=1)
