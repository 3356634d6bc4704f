"""Pacing under the service's rate limit (delivery/pacing.py), on an injected clock."""

from __future__ import annotations

import random

import pytest

from pattern_track.delivery.outcome import classify
from pattern_track.delivery.pacing import DEFAULT_LIMIT, DEFAULT_WINDOW_S, Pacer, rate_limiting
from pattern_track.store.state import MemoryState
from pattern_track.testing import FakeClock


def health_doc(used: int, limit: int = 10, window: float = 60) -> dict:
    return {"status": "healthy", "performance": {"rate_limiting": {
        "current_window_requests": used, "max_requests_per_window": limit, "window_seconds": window}}}


def pacer(store=None, clock=None, seed=1) -> Pacer:
    return Pacer(store if store is not None else MemoryState(), clock or FakeClock(), rng=random.Random(seed))


@pytest.mark.parametrize("doc, expected", [
    (health_doc(3), (10, 60.0, 3)),
    ({"performance": {}}, None),
    ({}, None),
    ("not a dict", None),
    (health_doc(True), None),  # a bool is not a count
    (health_doc(1, limit=0), None),
    (health_doc(-1), None),
    (health_doc(1, window=0), None),
])
def test_rate_limiting_reads_the_health_answer_or_says_none(doc, expected):
    assert rate_limiting(doc) == expected


def test_a_429_never_counts_against_the_breaker():
    outcome = classify(429, {}, b'{"detail": "Rate limit exceeded"}')
    assert outcome.reason == "rate_limited" and outcome.retry_after_s is None
    assert not outcome.counts_against_service


def test_without_health_the_real_service_window_is_assumed():
    assert pacer().window() == (DEFAULT_LIMIT, DEFAULT_WINDOW_S)


def test_a_429_without_retry_after_backs_off_on_the_window_scale():
    clock = FakeClock()
    p = pacer(clock=clock)
    p.health(health_doc(10, limit=10, window=60))
    wait = p.rate_limited(None)
    assert 15.0 <= wait <= 60.0
    assert p.wait_s() == pytest.approx(wait)
    assert p.under_pressure()
    clock.advance(wait)
    assert p.wait_s() == 0.0


def test_retry_after_when_given_is_the_wait():
    p = pacer()
    assert p.rate_limited(7.0) == 7.0
    assert p.wait_s() == pytest.approx(7.0)


def test_the_jitter_spreads_a_fleet_over_the_window():
    waits = [pacer(seed=seed).rate_limited(None) for seed in range(30)]
    assert min(waits) >= 15.0 and max(waits) <= 60.0
    assert max(waits) - min(waits) > 25.0  # spread, not in step
    assert len({round(w, 3) for w in waits}) == 30


def test_the_gap_doubles_on_each_429_and_shrinks_by_one_slot_per_stored_request():
    clock = FakeClock()
    p = pacer(clock=clock)
    p.health(health_doc(0, limit=10, window=60))  # a slot is 6 s
    gaps = []
    for _ in range(5):
        p.rate_limited(None)
        gaps.append(p.snapshot()["gap_s"])
    assert gaps == [6.0, 12.0, 24.0, 48.0, 60.0]  # multiplicative decrease of the rate, at most a window
    p.admitted()
    assert p.snapshot()["gap_s"] == 54.0  # additive increase
    for _ in range(20):
        p.admitted()
    assert p.snapshot()["gap_s"] == 0.0


def test_the_gap_spaces_requests_of_the_machine():
    clock = FakeClock()
    p = pacer(clock=clock)
    p.health(health_doc(0, limit=10, window=60))
    p.rate_limited(None)
    clock.advance(p.wait_s())
    assert p.wait_s() == 0.0
    p.sent()
    assert p.wait_s() == pytest.approx(6.0)  # the gap after the 429: one slot
    clock.advance(6.0)
    assert p.wait_s() == 0.0


def test_under_pressure_a_request_needs_a_fresh_health_answer_showing_room():
    clock = FakeClock()
    p = pacer(clock=clock)
    assert not p.needs_room()  # no pressure: no extra health check at all
    p.health(health_doc(10, limit=10))  # the window is full
    assert p.under_pressure() and p.needs_room()
    p.note_waiting()
    clock.advance(5)
    p.health(health_doc(9, limit=10))  # room
    assert not p.needs_room()
    p.sent()  # the room is taken
    assert p.needs_room()
    p.health(health_doc(9, limit=10))
    clock.advance(3)  # the answer is too old to vouch for room now
    assert p.needs_room()


def test_health_is_advice_after_a_window_without_room_the_request_goes_anyway():
    """The real service's count is stale (wire-contract.md): "full" must not stop delivery."""
    clock = FakeClock()
    p = pacer(clock=clock)
    p.health(health_doc(10, limit=10, window=60))
    p.note_waiting()
    for _ in range(13):
        clock.advance(5)
        p.health(health_doc(10, limit=10, window=60))  # still "full"
        if not p.needs_room():
            break
        p.note_waiting()
    assert not p.needs_room()
    p.went()
    assert p.needs_room()  # the go-anyway clock starts again


def test_pressure_ends_two_windows_after_the_window_was_last_seen_full():
    clock = FakeClock()
    p = pacer(clock=clock)
    p.health(health_doc(10, limit=10, window=60))
    clock.advance(119)
    assert p.under_pressure()
    clock.advance(2)
    assert not p.under_pressure() and not p.needs_room()


def test_every_process_of_the_machine_shares_the_pace(tmp_path):
    from pattern_track.store.outbox import Outbox

    clock = FakeClock()
    one, other = (Outbox(str(tmp_path), max_events=100, max_bytes=1 << 20) for _ in range(2))
    try:
        first, second = pacer(one, clock), pacer(other, clock, seed=2)
        first.health(health_doc(10, limit=10, window=60))
        wait = first.rate_limited(None)
        assert second.wait_s() == pytest.approx(wait)
        assert second.under_pressure() and second.window() == (10, 60.0)
    finally:
        one.close()
        other.close()


def test_a_wait_further_than_any_window_is_another_boots_clock_and_ignored():
    store = MemoryState()
    clock = FakeClock()
    store.set("pace", {"until": clock.monotonic() + 10**7})
    assert pacer(store, clock).wait_s() == 0.0


def test_a_damaged_record_is_read_as_none():
    store = MemoryState()
    store.set("pace", ["not", "a", "dict"])
    p = pacer(store)
    assert p.wait_s() == 0.0 and not p.under_pressure() and p.window() == (DEFAULT_LIMIT, DEFAULT_WINDOW_S)
