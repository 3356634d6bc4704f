"""Health caching and backoff, driven by a fake clock."""

import json

from pattern_track.delivery.backoff import Backoff
from pattern_track.delivery.health import Health
from pattern_track.delivery.transport import Answer, NoAnswer
from pattern_track.store.state import MemoryState
from pattern_track.testing import FakeClock


class FakeService:
    def __init__(self, doc, status=200):
        self.doc, self.status, self.calls = doc, status, 0

    def get(self, path, timeout_s):
        self.calls += 1
        if isinstance(self.doc, Exception):
            raise self.doc
        return Answer(self.status, {}, json.dumps(self.doc).encode())


HEALTHY = {"status": "healthy", "components": {"lineage_tracker": "operational"}, "performance": {}}


def make(service, store=None, clock=None):
    return Health(service.get, store or MemoryState(), path="/h", interval_s=30, timeout_s=1,
                  clock=clock or FakeClock())


def test_answer_is_cached_for_the_interval():
    """One request per interval, however often it is asked."""
    clock = FakeClock()
    service = FakeService(HEALTHY)
    health = make(service, clock=clock)
    assert all(health.is_healthy() for _ in range(10))
    assert service.calls == 1
    clock.advance(31)
    assert health.is_healthy() and service.calls == 2


def test_cached_answer_is_shared_between_processes():
    """A second monitor on the same store does not ask again."""
    clock, store = FakeClock(), MemoryState()
    service = FakeService(NoAnswer("Connection refused", "refused"))
    assert not make(service, store, clock).is_healthy()
    assert not make(service, store, clock).is_healthy()
    assert service.calls == 1
    assert store.get("health")["reason"].startswith("refused")


def test_our_own_cut_or_error_records_nothing():
    """A check our exit cut, or a RuntimeError of ours, says nothing about the service."""
    store = MemoryState()
    for error in (NoAnswer("cut by our own exit", "cut", service_fault=False),
                  RuntimeError("can't create new thread at interpreter shutdown")):
        failures = []
        health = Health(FakeService(error).get, store, path="/h", interval_s=30, timeout_s=1,
                        clock=FakeClock(), on_result=failures.append)
        assert health.check() is False
        assert store.get("health") is None and failures == []


def test_degraded_is_unhealthy_but_an_empty_pool_is_not():
    """Degraded is unhealthy; an empty pool (idle for 300 s) is healthy: only a request refills it."""
    degraded = dict(HEALTHY, status="degraded")
    no_pool = dict(HEALTHY, performance={"database_pool": {"pool_size": 0}})
    assert not make(FakeService(degraded)).check()
    assert make(FakeService(no_pool)).check()
    assert make(FakeService(HEALTHY)).snapshot()["is_healthy"] is False  # nothing checked yet


def test_backoff_grows_with_jitter_and_honours_retry_after():
    """Delays double up to the cap, are jittered, and never undercut Retry-After."""
    import random
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    assert all(0.5 <= d <= 1 for d in delays[:1]) and all(d <= 8 for d in delays)
    assert delays[-1] >= 4
    assert backoff.next(retry_after_s=30) == 30
    backoff.reset()
    assert backoff.next() <= 1
