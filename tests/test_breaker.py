"""The breaker: pybreaker's state machine over shared state and monotonic time."""

import pytest

from pattern_track.delivery.breaker import Breaker
from pattern_track.store.outbox import Outbox
from pattern_track.store.state import MemoryState
from pattern_track.testing import FakeClock


def make(store=None, clock=None, owner="a", threshold=3, reset=60.0):
    return Breaker(store if store is not None else MemoryState(), failure_threshold=threshold,
                   reset_timeout_s=reset, probe_ttl_s=5.0, owner=owner, clock=clock or FakeClock())


def test_opens_after_the_threshold_and_refuses_without_a_request():
    """Three failures open it; while open, allow() says no."""
    breaker = make()
    for _ in range(2):
        breaker.record(False)
        assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_failure_count():
    """Failures must be consecutive to open it."""
    breaker = make()
    breaker.record(False)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    assert breaker.state == "closed" and breaker.failure_count == 1


def test_probe_after_reset_timeout_then_close_on_success():
    """After the timeout one probe goes through; its success closes the breaker."""
    clock = FakeClock()
    breaker = make(clock=clock)
    for _ in range(3):
        breaker.record(False)
    clock.advance(59)
    assert not breaker.allow()
    clock.advance(2)
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "closed"


def test_failed_probe_reopens_for_another_timeout():
    """A failed trial reopens it and restarts the timer."""
    clock = FakeClock()
    breaker = make(clock=clock)
    for _ in range(3):
        breaker.record(False)
    clock.advance(61)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_probe() == pytest.approx(60)


def test_only_one_probe_at_a_time_across_processes():
    """Two breakers over one store (two processes) never both probe a half-open service."""
    clock = FakeClock()
    store = MemoryState()
    first, second = make(store, clock, "p1"), make(store, clock, "p2")
    for _ in range(3):
        first.record(False)
    assert second.state == "open" and not second.allow()
    clock.advance(61)
    assert first.allow()
    assert not second.allow()
    first.record(True)
    assert second.state == "closed" and second.allow()


def test_wall_clock_jumps_do_not_move_the_breaker():
    """Open-state timing is monotonic: an NTP step of an hour changes nothing."""
    clock = FakeClock()
    breaker = make(clock=clock)
    for _ in range(3):
        breaker.record(False)
    clock.jump_wall(3600)
    assert not breaker.allow()
    clock.jump_wall(-7200)
    clock.advance(61)
    assert breaker.allow()


def test_state_is_shared_through_the_outbox(tmp_path):
    """A breaker opened by one process is open for the next one using the same cache."""
    clock = FakeClock()
    store = Outbox(str(tmp_path / "c"), max_events=10, max_bytes=10_000)
    for _ in range(3):
        make(store, clock, "p1").record(False)
    assert make(Outbox(str(tmp_path / "c"), max_events=10, max_bytes=10_000), clock, "p2").state == "open"


def test_reset_closes():
    """reset() is the documented way to close it by hand."""
    breaker = make()
    for _ in range(3):
        breaker.record(False)
    breaker.reset()
    assert breaker.state == "closed" and breaker.allow()


def test_an_opening_stored_before_a_reboot_does_not_hold_the_breaker_open(tmp_path):
    """The monotonic clock restarts low after a reboot: a stored opening time ahead of it
    is from the last boot, so a probe is due at once (not after the old uptime)."""
    store = Outbox(str(tmp_path / "c"), max_events=10, max_bytes=10_000)
    before = FakeClock(start=864_000.0)  # ten days of uptime
    for _ in range(3):
        make(store, before).record(False)
    after_reboot = FakeClock(start=50.0)
    breaker = make(store, after_reboot, owner="b")
    assert breaker.state == "open"
    assert breaker.seconds_until_probe() == 0.0
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "closed"
