"""Each event once at the service, even when its answer never came back (issue 16).

The collector's ``late``, ``truncate`` and ``reset`` faults store a request's events and
then fail to tell the client. A script tracks and calls ``close()``; the detached drainer
it made sure of delivers the rest. It must ask the read route before resending, so
node-creating events arrive exactly once; applications (no read can tell) only when no
later event of their request was found stored.
"""

import collections
import subprocess

import pytest

from pattern_track.collector import Collector
from pattern_track.process.launcher import drainer_running
from tests.conftest import PYTHON
from tests.helpers import eventually, store_dir

pytestmark = pytest.mark.slow

#: Creations, modifications of them and applications, in the order a user makes them.
SCRIPT = """
import sys
from pattern_track import Tracker
t = Tracker(sys.argv[1], cache_dir=sys.argv[2])
for i in range(int(sys.argv[3])):
    if i % 4 == 0:
        t.track("pattern_created", pattern_id=f"c{i}", pattern_data={"code": str(i)})
    elif i % 4 < 3:
        t.track("pattern_modified", pattern_id=f"c{i}", pattern_version="1.1.0", parent_pattern_ids=[f"c{i - i % 4}"],
                pattern_data={"code": str(i)})
    else:
        t.track("pattern_applied", pattern_id=f"c{i - 3}", pattern_data={"where": i})
t.close()
"""


def arrivals(collector):
    events = collector.events()
    return collections.Counter(e["pattern_data"]["event_id"] for e in events), {
        e["pattern_data"]["event_id"]: e["event_type"] for e in events}


@pytest.mark.parametrize("fault, params, heal", [
    ("late", {"delay_s": 2.0}, False),  # stores, answers after close() gave up
    ("truncate", {"at_bytes": 20}, True),  # stores, its 200 is cut short
    ("reset", {}, True),  # stores the batch, then resets the connection
])
def test_events_whose_answer_was_lost_are_stored_once(tmp_path, cache_dir, env, fault, params, heal):
    """Node-creating events arrive exactly once; duplicates stay under 1 %; nothing is lost."""
    n = 200
    with Collector() as collector:
        collector.set_fault(fault, **params)
        done = subprocess.run([PYTHON, "-c", SCRIPT, collector.url, cache_dir, str(n)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
        if heal:
            collector.set_fault("none")
        assert eventually(lambda: len(arrivals(collector)[0]) == n, 60), collector.state()
        # Count once the drainer has nothing left and has ended: a resend would land before.
        store = store_dir(cache_dir, collector.url)
        assert eventually(lambda: not drainer_running(store), 30)
        counts, kinds = arrivals(collector)
        node_dups = sum(v - 1 for k, v in counts.items() if kinds[k] != "pattern_applied")
        dups = sum(v - 1 for v in counts.values())
        assert node_dups == 0, counts
        assert dups <= n // 100, dups
        assert collector.state()["requests"].get("evolution"), "the read route was not asked"


def test_a_cut_short_answer_never_opens_the_breaker(tmp_path, cache_dir, env):
    """A 200 cut short is the service's own answer: stored, never counted against it."""
    from pattern_track import Tracker

    with Collector() as collector:
        collector.set_fault("truncate", at_bytes=10)
        tracker = Tracker(collector.url, cache_dir=cache_dir, handoff=False, linger_s=0.0,
                          breaker_failure_threshold=1)
        try:
            for i in range(30):
                assert tracker.track("pattern_created", pattern_id=f"t{i}", pattern_data={"code": str(i)})
                assert tracker.flush(10)
            assert tracker.stats()["breaker"]["state"] == "closed"
            collector.set_fault("none")
            assert tracker.sync_offline_events(timeout=30)["success"]
        finally:
            tracker.close(timeout=2)
        counts, _ = arrivals(collector)
        assert len(counts) == 30 and max(counts.values()) == 1, counts
