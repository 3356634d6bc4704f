"""Service faults: for each, the caller is never blocked or raised at, nothing is lost, and
delivery recovers once the service does."""

import time

import pytest

from tests.integration.test_tracker_live import counts_add_up

FAULTS = [
    ("error", {"status": 500}), ("error", {"status": 503}), ("error", {"status": 504}),
    ("rate_limit", {}), ("rate_limit", {"retry_after": "2"}),
    ("rate_limit", {"retry_after": "Wed, 21 Oct 2037 07:28:00 GMT"}),
    ("degraded", {}), ("db_down", {}), ("flaky", {"every": 2}), ("redirect", {"location": "http://127.0.0.1:9/x"}),
    ("html", {}), ("empty", {}), ("hang", {}), ("trickle", {"interval_s": 0.3}), ("slow", {"delay_s": 0.3}),
]


@pytest.mark.parametrize("mode,params", FAULTS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(FAULTS)])
def test_fault_then_recovery_loses_nothing(collector, make_tracker, mode, params):
    """track() stays instant under the fault; after it, every event arrives exactly once."""
    collector.set_fault(mode, **params)
    tracker = make_tracker(collector.url, request_deadline_s=1.0, lease_ttl_s=2.0, read_timeout_s=0.5,
                           health_check_timeout_s=0.5, health_check_interval_s=0.2, max_attempts=50)
    worst = 0.0
    ids = []
    for i in range(30):
        start = time.perf_counter()
        ids.append(tracker.track("pattern_created", pattern_id=f"f{i}", pattern_data={"code": str(i)},
                                 language="python"))
        worst = max(worst, time.perf_counter() - start)
    assert None not in ids
    assert worst < 0.25, f"track() blocked {worst:.3f}s under {mode}"
    assert tracker.flush(15)
    assert counts_add_up(tracker.stats())
    collector.set_fault("none")
    tracker.reset_circuit_breaker()
    result = tracker.sync_offline_events()
    assert result["success"], result
    assert collector.wait_for_events(30, timeout=15)
    stored = {e["pattern_data"]["event_id"] for e in collector.events()}
    assert set(ids) <= stored
    assert tracker.stats()["pending"] == 0
    assert tracker.stats()["breaker"]["state"] == "closed"


def test_retry_after_is_honoured(collector, make_tracker):
    """A 429 with Retry-After: 7 makes the drainer wait at least 7 s."""
    tracker = make_tracker(collector.url, backoff_base_s=0.01)
    tracker.track("pattern_created", pattern_id="a", pattern_data={"code": "x"})
    assert tracker.flush(5) and collector.wait_for_events(1, timeout=5)
    collector.set_fault("rate_limit", retry_after="7")
    tracker.track("pattern_created", pattern_id="b", pattern_data={"code": "x"})
    assert tracker.flush(5)
    result = tracker._drainer.drain()  # the shared wait the 429 set holds this path too
    assert result["state"] == "rate_limited" and 5.0 < result["retry_after_s"] <= 7.0
    assert tracker._core.wait_s() > 5.0  # and the drainer's own loop (step) waits for it


def test_shared_rate_limit_is_survived(make_tracker):
    """A service allowing 3 requests a window: batching and backoff still deliver everything."""
    from pattern_track.collector import Collector

    clock = [0.0]
    with Collector(rate_limit=3, window_s=60, clock=lambda: clock[0]) as collector:
        tracker = make_tracker(collector.url, batch_size=50)
        for i in range(100):
            tracker.track("pattern_created", pattern_id=f"r{i}", pattern_data={"code": "x"})
        assert tracker.flush(10)
        clock[0] += 61  # the window passes
        while tracker.stats()["pending"]:
            clock[0] += 61
            assert tracker.sync_offline_events()["sync_stats"]["synced"] > 0
        assert collector.wait_for_events(100, timeout=10)
        assert len({e["pattern_id"] for e in collector.events()}) == 100
