"""Order is a property: whatever interleaving of tracking, memory overflow, service
failures and recovery, a parent is stored before its child and no child is lost."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pattern_track import Tracker
from pattern_track.collector import Collector
from tests.helpers import eventually

pytestmark = pytest.mark.slow

steps = st.lists(st.one_of(
    st.tuples(st.just("chain"), st.integers(min_value=1, max_value=25)),
    st.tuples(st.just("fault"), st.sampled_from(["none", "error", "slow", "rate_limit", "hang"])),
), min_size=1, max_size=8)


@pytest.fixture(scope="module")
def service():
    with Collector() as collector:
        yield collector


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=steps, cap=st.sampled_from([1_000_000, 12]))
def test_a_parent_is_always_stored_before_its_child(service, tmp_path_factory, plan, cap):
    """Random chains (creation then modifications), a memory stage of 8 so they overflow into
    the journal, faults switched between them, and an outbox that may be tiny (12 events;
    test_services.py makes sure events wait for room): all delivered, in order, none
    dead-lettered and none refused."""
    service.set_fault("none")
    service.reset()
    tracker = Tracker(service.url, cache_dir=str(tmp_path_factory.mktemp("order")), max_buffer_events=8,
                      batch_size=5, linger_s=0.0, backoff_base_s=0.01, backoff_max_s=0.05,
                      breaker_reset_timeout_s=0.1, drain_interval_s=0.02, health_check_interval_s=0.0,
                      read_timeout_s=0.3, request_deadline_s=0.5, lease_ttl_s=5.0, handoff=False,
                      outbox_max_events=cap)
    chains = []
    try:
        for number, (kind, arg) in enumerate(plan):
            if kind == "fault":
                service.set_fault(arg, **({"status": 503} if arg == "error" else {"delay_s": 0.02} if arg == "slow"
                                          else {}))
                continue
            ids = [tracker.track_pattern_creation(f"chain{number} = 0", {"language": "python"})]
            for step in range(1, arg):
                ids.append(tracker.track_pattern_modification(ids[-1], f"chain{number} = {step}",
                                                              {"language": "python"}))
            assert None not in ids
            chains.append(ids)
        service.set_fault("none")
        expected = sum(len(chain) for chain in chains)
        assert eventually(lambda: len(service.events()) >= expected, timeout=60), \
            f"{len(service.events())} of {expected} stored; stats {tracker.stats()['outcomes']}"
        position = {}
        for index, event in enumerate(service.events()):
            position.setdefault(event["pattern_id"], index)
        for chain in chains:
            assert [position[p] for p in chain] == sorted(position[p] for p in chain), "a child before its parent"
        stats = tracker.stats()
        assert stats["dead_letter"] == 0 and stats["dropped"] == {}
    finally:
        service.set_fault("none")
        tracker.close(timeout=1)
