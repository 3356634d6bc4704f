"""The tracker end to end against the reference collector on loopback (real threads, real HTTP)."""

import json
import os
import threading

import pytest

from pattern_track import Tracker
from pattern_track.collector import Collector
from pattern_track.store.outbox import Outbox
from tests.helpers import eventually, store_dir


def counts_add_up(stats):
    o = stats["outcomes"]
    return o["accepted"] == (o["delivered"] + o["outboxed"] + o["dead_lettered"] + o["dropped_after_accept"]
                             + o["buffered"] + o["in_flight"] + o["held_in_memory"] + o["journal_only"])


def track_requests(collector):
    counts = collector.state()["requests"]
    return sum(n for route, by_status in counts.items() if route in ("track", "batch") for n in by_status.values())


def test_a_lineage_chain_is_delivered_in_order(collector, make_tracker):
    """Create, modify, apply, merge: all stored, parent before child, counts add up."""
    tracker = make_tracker(collector.url)
    ctx = {"language": "python", "file_path": "/src/a.py", "tool_name": "Write"}
    a = tracker.track_pattern_creation("def a(): pass", ctx)
    b = tracker.track_pattern_modification(a, "def a(): return 1", ctx, reason="fix")
    c = tracker.track_pattern_creation("def c(): pass", ctx)
    assert tracker.track_pattern_application(b, ctx) == b
    m = tracker.track_pattern_merge([b, c], "def m(): pass", ctx)
    assert None not in (a, b, c, m)
    assert tracker.flush(10)
    assert collector.wait_for_events(5, timeout=10)
    stored = collector.events()
    assert [e["event_type"] for e in stored] == ["pattern_created", "pattern_modified", "pattern_created",
                                                  "pattern_applied", "pattern_merged"]
    assert stored[0]["language"] == "python" and stored[0]["file_path"] == "/src/a.py"
    assert stored[1]["parent_pattern_ids"] == [a]
    stats = tracker.stats()
    assert stats["sent"] == 5 and stats["pending"] == 0 and stats["dead_letter"] == 0
    assert counts_add_up(stats)


def test_service_down_keeps_everything_then_sync_delivers_in_order(make_tracker, cache_dir):
    """Nothing listening: events go to the outbox; once up, sync delivers them, parents first."""
    probe = Collector().start()
    port = probe.port
    probe.stop()
    tracker = make_tracker(f"http://127.0.0.1:{port}", connect_timeout_s=0.2)
    ids = []
    for i in range(10):
        parent = tracker.track_pattern_creation(f"v{i} = 0", {"language": "python"})
        ids.append(tracker.track_pattern_modification(parent, f"v{i} = 1", {"language": "python"}))
    assert None not in ids
    assert tracker.flush(10)
    stats = tracker.stats()
    assert stats["pending"] == 20 and stats["sent"] == 0 and counts_add_up(stats)
    with Collector(port=port) as collector:
        result = tracker.sync_offline_events()
        assert result["success"], result
        assert result["sync_stats"]["synced"] == 20
        kinds = [e["event_type"] for e in collector.events()]
        assert kinds == ["pattern_created", "pattern_modified"] * 10
    assert tracker.stats()["pending"] == 0


def test_breaker_opens_and_stops_requests(collector, make_tracker):
    """After the threshold of failed requests, new events go to the outbox with no request."""
    collector.set_fault("error", status=500)
    tracker = make_tracker(collector.url, breaker_failure_threshold=3, breaker_reset_timeout_s=600)
    tracker.track_pattern_creation("x = 0", {"language": "python"})
    assert tracker.flush(10)  # first failure: the event is kept in the outbox
    assert tracker.stats()["breaker"]["failure_count"] == 1
    for _ in range(2):  # two more failed deliveries of the outbox
        assert not tracker.sync_offline_events()["success"]
    assert tracker.stats()["breaker"]["state"] == "open"
    before = track_requests(collector)
    for i in range(20):
        tracker.track_pattern_creation(f"y = {i}", {"language": "python"})
    assert tracker.flush(10)
    assert track_requests(collector) == before
    stats = tracker.stats()
    assert stats["pending"] == 21 and counts_add_up(stats)


def test_degraded_health_is_advice_one_probe_per_reset_timeout_then_recovery(collector, make_tracker):
    """Degraded health holds events but lets one probe per reset timeout through; recovery needs no action."""
    import time

    collector.set_fault("degraded")
    tracker = make_tracker(collector.url, breaker_reset_timeout_s=1.0)
    started = time.monotonic()
    for i in range(5):
        tracker.track_pattern_creation(f"z = {i}", {"language": "python"})
    assert tracker.flush(10)
    probes = track_requests(collector)
    assert probes <= 1 + (time.monotonic() - started) / 1.0
    assert tracker.stats()["health"]["is_healthy"] is False
    collector.set_fault("none")  # the database came back: only a request can tell
    assert collector.wait_for_events(5, timeout=20)
    assert eventually(lambda: tracker.stats()["health"]["is_healthy"] is True, timeout=5)


def test_database_lost_after_start_keeps_events(collector, make_tracker):
    """Health says healthy but the pool is empty and tracks fail: events stay pending."""
    tracker = make_tracker(collector.url)
    tracker.track_pattern_creation("ok = 1", {"language": "python"})
    assert tracker.flush(10) and collector.wait_for_events(1, timeout=10)
    collector.set_fault("db_down")
    tracker.check_health()
    for i in range(4):
        tracker.track_pattern_creation(f"w = {i}", {"language": "python"})
    assert tracker.flush(10)
    assert tracker.stats()["pending"] == 4 and len(collector.events()) == 1


def test_event_the_service_refuses_is_dead_lettered_with_its_reason(collector, make_tracker, cache_dir):
    """A modification of an unknown parent is retried max_attempts times, then kept as a dead letter."""
    tracker = make_tracker(collector.url, max_attempts=1)
    assert tracker.track("pattern_modified", pattern_id="child", parent_pattern_ids=["never-created"],
                         pattern_data={"code": "x"}, language="python")
    assert tracker.flush(10)
    stats = tracker.stats()
    assert stats["dead_letter"] == 1 and stats["pending"] == 0 and counts_add_up(stats)
    tracker.close()
    (_, letter), = Outbox(store_dir(cache_dir, collector.url), max_events=10, max_bytes=10**6).dead_letters()
    assert letter["reason"] == "parent_not_found" and "not found" in letter["detail"]


@pytest.mark.parametrize("args,kwargs", [
    ((), {}),
    (("pattern_created",), {}),
    (("pattern_created",), {"pattern_id": "p"}),
    (("pattern_created",), {"pattern_id": "p", "pattern_data": {"x": float("nan")}}),
    (("pattern_created",), {"pattern_id": "p", "pattern_data": {"x": object()}}),
    (("pattern_created",), {"pattern_id": "p", "pattern_data": {1: "non-string key"}}),
    ((object(),), {"pattern_id": object()}),
    (("pattern_created",), {"pattern_id": "p", "pattern_data": {"code": "\udc80"}}),
    ((None,), {}),
    (("pattern_created", "extra positional"), {}),
])
def test_track_never_raises_whatever_it_is_given(make_tracker, args, kwargs):
    """Garbage in is a counted drop (or a counted accept), never an exception."""
    tracker = make_tracker("http://127.0.0.1:9")
    try:
        result = tracker.track(*args, **kwargs)
    except TypeError:
        # Only a wrong *call shape* (missing positional) can fail before our code runs.
        assert not args or len(args) > 1
        return
    stats = tracker.stats()
    assert (result is None and sum(stats["dropped"].values()) == 1) or (result and stats["accepted"] == 1)


def test_track_after_close_is_a_counted_drop(collector, make_tracker):
    """close() is idempotent; later events are refused and counted."""
    tracker = make_tracker(collector.url)
    tracker.close()
    tracker.close()
    assert tracker.track_pattern_creation("a = 1", {"language": "python"}) is None
    assert tracker.stats()["dropped"] == {"closed": 1}


def test_disabled_tracker_does_nothing(tmp_path):
    """PATTERN_TRACKING_ENABLED=false: no threads, no cache, counted drops."""
    before = threading.active_count()
    tracker = Tracker.from_env({"PATTERN_TRACKING_ENABLED": "false", "PATTERN_CACHE_DIR": str(tmp_path / "c")})
    assert tracker.track_pattern_creation("a = 1") is None
    assert threading.active_count() == before
    assert not os.path.exists(tmp_path / "c")
    assert tracker.stats()["dropped"] == {"disabled": 1}


def test_many_threads_tracking_at_once_lose_nothing(collector, make_tracker):
    """8 threads x 250 events: every one delivered exactly once, counts add up."""
    tracker = make_tracker(collector.url)
    start = threading.Barrier(8)

    def work(n):
        start.wait()
        for i in range(250):
            assert tracker.track("pattern_created", pattern_id=f"t{n}-{i}", pattern_data={"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.flush(30)
    assert collector.wait_for_events(2000, timeout=30)
    ids = [e["pattern_data"]["event_id"] for e in collector.events()]
    assert len(ids) == len(set(ids)) == 2000
    assert counts_add_up(tracker.stats())


def test_before_send_can_redact_or_drop_and_its_errors_are_contained(collector, make_tracker):
    """before_send edits or drops events; an exception in it is a counted drop."""
    def hook(ev):
        if ev["pattern_id"] == "drop":
            return None
        if ev["pattern_id"] == "boom":
            raise RuntimeError("bug in user code")
        ev["pattern_data"]["code"] = "<redacted>"
        return ev

    tracker = make_tracker(collector.url, before_send=hook)
    assert tracker.track("pattern_created", pattern_id="keep", pattern_data={"code": "secret"})
    assert tracker.track("pattern_created", pattern_id="drop", pattern_data={"code": "x"}) is None
    assert tracker.track("pattern_created", pattern_id="boom", pattern_data={"code": "x"}) is None
    assert tracker.flush(10) and collector.wait_for_events(1, timeout=10)
    (stored,) = collector.events()
    assert stored["pattern_data"]["code"] == "<redacted>"
    assert tracker.stats()["dropped"] == {"before_send": 1, "before_send_error": 1}


def test_full_outbox_refuses_and_counts(make_tracker):
    """Past the size cap events are refused with a count (at track(), by the journal, or
    by the outbox), never silently evicted."""
    tracker = make_tracker("http://127.0.0.1:9", cache_max_size_mb=0.001, connect_timeout_s=0.2)
    accepted = sum(bool(tracker.track("pattern_created", pattern_id=f"p{i}", pattern_data={"code": "x" * 200}))
                   for i in range(20))
    assert tracker.flush(10)
    stats = tracker.stats()
    assert stats["dropped"].get("cache_full", 0) == 20 - accepted > 0
    assert stats["pending"] + stats["dropped"].get("outbox_full", 0) == accepted
    assert counts_add_up(stats)


def test_legacy_stats_shape(collector, make_tracker):
    """get_tracker_stats() keeps the original library's keys for existing dashboards."""
    tracker = make_tracker(collector.url)
    tracker.track_pattern_creation("a = 1", {"language": "python"})
    tracker.flush(10)
    s = tracker.get_tracker_stats()
    assert set(s["tracker"]) == {"enabled", "base_url", "cached_patterns"}
    assert set(s["resilience"]) == {"executor", "health", "circuit_breaker", "cache"}
    assert set(s["resilience"]["executor"]) == {"total_tasks", "active_tasks", "success_count", "error_count",
                                                "success_rate"}
    assert set(s["resilience"]["health"]) >= {"is_healthy", "last_check", "consecutive_failures",
                                              "consecutive_successes", "last_health_data", "base_url"}
    assert set(s["resilience"]["circuit_breaker"]) >= {"state", "failure_count", "consecutive_successes",
                                                       "last_failure_time", "last_success_time", "is_available"}
    assert set(s["resilience"]["cache"]) == {"pending_events", "total_cached", "total_synced", "cache_dir",
                                             "max_age_days"}
    json.dumps(s)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_working_tracker(collector, make_tracker):
    """After fork the child rebuilds threads and locks and delivers its own events."""
    tracker = make_tracker(collector.url)
    tracker.track("pattern_created", pattern_id="parent", pattern_data={"code": "p"})
    assert tracker.flush(10)
    pid = os.fork()
    if pid == 0:  # child
        ok = tracker.track("pattern_created", pattern_id="child", pattern_data={"code": "c"}) is not None
        ok = ok and tracker.flush(30)
        tracker.close(timeout=5)
        os._exit(0 if ok and tracker.stats()["sent"] == 1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert collector.wait_for_events(2, timeout=10)
    assert sorted(e["pattern_id"] for e in collector.events()) == ["child", "parent"]


def test_burst_right_after_start_is_never_dropped(make_tracker):
    """Overflowing the memory stage before the outbox is open spills to the spool, not the floor."""
    tracker = make_tracker("http://127.0.0.1:9", max_buffer_events=10, connect_timeout_s=0.1)
    ids = [tracker.track("pattern_created", pattern_id=f"b{i}", pattern_data={"code": "x"}) for i in range(2000)]
    assert None not in ids
    assert tracker.flush(20)
    stats = tracker.stats()
    assert stats["dropped"] == {}
    assert stats["pending"] == 2000 and counts_add_up(stats)


def test_an_idle_pool_never_stops_delivery(collector, make_tracker):
    """Health shows the emptied pool of an idle service (pool_size 0): events still go, at once."""
    collector.set_fault("idle_pool", idle_s=0.2)
    tracker = make_tracker(collector.url, health_check_interval_s=0.0, linger_s=0.0)
    tracker.track_pattern_creation("first = 1", {"language": "python"})
    assert collector.wait_for_events(1, timeout=10)
    assert eventually(lambda: collector.state()["pool_size"] == 0, timeout=5)  # idle again
    assert tracker.check_health() is True
    tracker.track_pattern_creation("second = 2", {"language": "python"})
    assert collector.wait_for_events(2, timeout=10)


def test_a_proxy_body_limit_halves_batches_and_isolates_the_oversized_event(collector, make_tracker):
    """Behind a 30 kB proxy limit, 9 kB events all arrive; one 40 kB event alone is dead-lettered."""
    collector.set_fault("none")
    tracker = make_tracker(collector.url)
    collector.set_fault("body_limit", max_bytes=30_000)
    ids = [tracker.track("pattern_created", pattern_id=f"big{i}", pattern_data={"code": "x" * 9000}) for i in range(20)]
    ids.insert(5, tracker.track("pattern_created", pattern_id="huge", pattern_data={"code": "y" * 40_000}))
    assert None not in ids
    assert tracker.flush(30)
    assert eventually(lambda: len(collector.events()) == 20, timeout=20)
    stats = tracker.stats()
    assert stats["dead_letter"] == 1 and stats["breaker"]["state"] == "closed"


def test_an_unknown_error_on_one_event_holds_up_nothing_and_leaves_the_breaker_closed(collector, make_tracker):
    """One event keeps failing with an error_type no client knows: the rest of its batch is stored."""
    collector.set_fault("unknown_error", error_type="WeirdError", match="ghost")
    tracker = make_tracker(collector.url)
    for i in range(5):
        tracker.track("pattern_created", pattern_id=f"fine{i}", pattern_data={"code": str(i)})
    tracker.track("pattern_created", pattern_id="ghost", pattern_data={"code": "g"})
    for i in range(5, 10):
        tracker.track("pattern_created", pattern_id=f"fine{i}", pattern_data={"code": str(i)})
    assert collector.wait_for_events(10, timeout=15)
    assert tracker.stats()["breaker"]["failure_count"] == 0


def test_a_foreign_spool_file_breaks_neither_stats_nor_sync(collector, make_tracker, cache_dir):
    """A spool file holding `null` (or garbage) is set aside and logged; stats and delivery go on."""
    tracker = make_tracker(collector.url)
    tracker.track("pattern_created", pattern_id="ok", pattern_data={"code": "x"})
    spool = os.path.join(store_dir(cache_dir, collector.url), "spool")
    os.makedirs(spool, exist_ok=True)
    for name, text in (("00000000000000000001-1-aa.json", "null"), ("00000000000000000002-1-bb.json", "{nope")):
        with open(os.path.join(spool, name), "w") as f:
            f.write(text)
    stats = tracker.stats()
    assert "error" not in stats and stats["spooled"] == 0
    assert tracker.get_tracker_stats()["resilience"]["cache"]["pending_events"] >= 0
    assert collector.wait_for_events(1, timeout=10)
    assert eventually(lambda: sorted(os.listdir(spool)) == ["00000000000000000001-1-aa.json.bad",
                                                            "00000000000000000002-1-bb.json.bad"], timeout=10)


def test_sync_offline_events_honours_its_timeout(collector, make_tracker, cache_dir):
    """3,000 events waiting and a slow service: sync_offline_events(timeout=1) returns in about 1 s."""
    import time

    box = Outbox(store_dir(cache_dir, collector.url), max_events=10**6, max_bytes=10**9)
    events = [json.dumps({"event_type": "pattern_created", "pattern_id": f"s{i}", "language": "python",
                          "pattern_data": {"code": "x", "event_id": f"e{i}"}}).encode() for i in range(3000)]
    box.append_chunks(events, chunk_size=100)
    box.close()
    collector.set_fault("slow", delay_s=0.2)
    tracker = make_tracker(collector.url)
    started = time.monotonic()
    result = tracker.sync_offline_events(timeout=1)
    took = time.monotonic() - started
    assert took < 1 + 0.2 + 1.0, f"took {took:.1f} s"  # the bound, one slow batch, scheduling slack
    assert result["success"] is False and result["state"] == "timeout"


def test_a_poison_event_waits_alone_and_its_children_wait_with_it(collector, make_tracker):
    """An event refused for its own sake is parked on its own schedule: unrelated events tracked
    after it arrive at once, its child waits behind it, and after max_attempts it is dead-lettered."""
    import time

    collector.set_fault("unknown_error", error_type="WeirdError", match="ghost")
    tracker = make_tracker(collector.url, backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=4,
                           drain_interval_s=0.05)
    collector.set_fault("none")
    tracker.track("pattern_created", pattern_id="warm", pattern_data={"code": "w"})
    assert collector.wait_for_events(1, timeout=10)
    collector.set_fault("unknown_error", error_type="WeirdError", match="ghost")
    tracker.track("pattern_created", pattern_id="ghost", pattern_data={"code": "g"})
    tracker.track("pattern_modified", pattern_id="ghost-child", parent_pattern_ids=["ghost"],
                  pattern_data={"code": "c"})
    started = time.monotonic()
    for i in range(20):
        tracker.track("pattern_created", pattern_id=f"fine{i}", pattern_data={"code": str(i)})
    assert collector.wait_for_events(21, timeout=10)
    assert time.monotonic() - started < 5  # not held behind the poison's tries
    sent_ids = [e["pattern_id"] for e in collector.events()]
    assert "ghost-child" not in sent_ids  # it waits with its parent (order holds)
    assert eventually(lambda: tracker.stats()["dead_letter"] >= 1, timeout=20)
    assert tracker.stats()["breaker"]["failure_count"] == 0


def test_stats_are_true_from_the_first_call(collector, cache_dir):
    """A fresh tracker reports the 200 events already waiting in its cache, without tracking
    first and without starting a thread."""
    import threading

    box = Outbox(store_dir(cache_dir, collector.url), max_events=10**6, max_bytes=10**9)
    box.append_chunks([json.dumps({"event_type": "pattern_created", "pattern_id": f"w{i}",
                                   "pattern_data": {"code": "x", "event_id": f"w{i}"}}).encode()
                       for i in range(200)], chunk_size=50)
    box.close()
    threads = threading.active_count()
    tracker = Tracker(collector.url, cache_dir=cache_dir)
    stats = tracker.stats()
    assert (stats["pending"], stats["dead_letter_total"]) == (200, 0)
    assert threading.active_count() == threads
    empty = Tracker(collector.url, cache_dir=cache_dir + "-empty").stats()
    assert (empty["pending"], empty["spooled"], empty["dead_letter_total"]) == (0, 0, 0)
    tracker.close()


def test_track_from_a_signal_handler_during_the_first_track(make_tracker):
    """A 100 µs timer whose handler tracks, firing during the first track(): one drainer
    thread, every outer event accepted, nested ones accepted or refused as `reentrant`."""
    import signal

    tracker = make_tracker("http://127.0.0.1:9")
    nested = []

    def handler(signum, frame):
        nested.append(tracker.track("pattern_created", pattern_id=f"sig{len(nested)}", pattern_data={"c": 1}))

    before = threading.active_count()
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
    try:
        outer = [tracker.track("pattern_created", pattern_id=f"main{i}", pattern_data={"c": 1}) for i in range(200)]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    assert None not in outer and nested
    assert threading.active_count() - before <= 3  # the drainer (and at most a sender)
    refused = nested.count(None)  # handlers nested more than three deep: refused, counted
    assert tracker.stats()["dropped"] == ({"reentrant": refused} if refused else {})


def test_a_logging_handler_that_tracks_cannot_recurse_out_of_track(make_tracker):
    """A handler on pattern_track's logger that tracks an invalid event: no RecursionError,
    the outer call returns None, the nesting is refused with a count."""
    import logging

    tracker = make_tracker("http://127.0.0.1:9")

    class Echo(logging.Handler):
        def emit(self, record):
            tracker.track("not an event type", pattern_id="p")

    logger = logging.getLogger("pattern_track")
    echo = Echo()
    logger.addHandler(echo)
    try:
        assert tracker.track("still not an event type", pattern_id="p") is None
        assert tracker.track("pattern_created", pattern_id="ok", pattern_data={"c": 1}) is not None
    finally:
        logger.removeHandler(echo)
    dropped = tracker.stats()["dropped"]
    assert dropped["reentrant"] >= 1 and dropped["invalid_event_type"] >= 1


def test_stats_tell_failure_reasons_apart(collector, make_tracker, tmp_path):
    """A 429 shows as rate_limited, a refused connection as refused: last_failure says which."""
    collector.set_fault("rate_limit")
    limited = make_tracker(collector.url, linger_s=0.0)
    limited.track("pattern_created", pattern_id="r", pattern_data={"c": 1})
    assert eventually(lambda: (limited.stats()["last_failure"] or {}).get("reason") == "rate_limited", timeout=10)
    refused = make_tracker("http://127.0.0.1:9", cache_dir=str(tmp_path / "refused"), linger_s=0.0,
                           connect_timeout_s=0.2, health_check_interval_s=0.0)
    refused.track("pattern_created", pattern_id="x", pattern_data={"c": 1})
    assert eventually(lambda: (refused.stats()["health"].get("reason") or "").startswith("refused"), timeout=10)


def test_lineage_is_sent_as_the_service_stores_it(collector, make_tracker):
    """Original pattern ids over the caller's context; several parents as one merge (an edge
    each); where a pattern was applied kept inside pattern_data."""
    import hashlib

    tracker = make_tracker(collector.url)
    code = "def f():\n    return 1\n"
    a = tracker.track_pattern_creation(code, {"file_path": "/src/a.py"})  # no language given
    digest = hashlib.sha256(f"{code}::".encode()).hexdigest()[:12]
    assert a == f"unknown-code-{digest}"  # the original formula: the context as given
    b = tracker.track_pattern_creation("def g(): pass", {"language": "python"})
    child = tracker.track_pattern_creation("def h(): pass", {"language": "python"}, parent_pattern_ids=[a, b])
    tracker.track_pattern_application(child, {"file_path": "/src/use.py", "tool_name": "Edit", "language": "python"})
    assert tracker.flush(10) and collector.wait_for_events(4, timeout=10)
    sent = {e["pattern_id"]: e for e in collector.events()}
    merged = [e for e in collector.events() if e["event_type"] == "pattern_merged"]
    assert len(merged) == 1 and merged[0]["parent_pattern_ids"] == [a, b]
    assert sent[a]["language"] == "python"  # the wire field may carry the inferred language
    applied = next(e for e in collector.events() if e["event_type"] == "pattern_applied")
    assert (applied["pattern_data"]["file_path"], applied["pattern_data"]["tool_name"]) == ("/src/use.py", "Edit")


def test_a_shared_retry_after_holds_every_path_sync_included(collector, make_tracker):
    """While a Retry-After wait runs, even an explicit sync sends nothing and says why."""
    tracker = make_tracker(collector.url)
    tracker.track("pattern_created", pattern_id="w", pattern_data={"c": 1})
    assert tracker.flush(10)
    collector.set_fault("error", status=503)
    tracker.track("pattern_created", pattern_id="held", pattern_data={"c": 1})
    assert tracker.flush(10)  # in the outbox now
    collector.set_fault("none")
    tracker._core.set_not_before(30)  # as a 429 with Retry-After: 30 would
    before = track_requests(collector)
    result = tracker.sync_offline_events(timeout=2)
    assert result["state"] == "rate_limited" and track_requests(collector) == before
