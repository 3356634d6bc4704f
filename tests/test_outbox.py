"""The durable outbox: order, caps that refuse and count, safe settling, leases, privacy."""

import os
import stat

import pytest

from pattern_track.errors import CacheError
from pattern_track.store.cachedir import prepare_directory
from pattern_track.store.outbox import Outbox


def open_box(path, max_events=1000, max_bytes=1_000_000):
    return Outbox(str(path), max_events=max_events, max_bytes=max_bytes)


def test_chunks_come_back_in_order(tmp_path):
    """FIFO across appends: a parent's creation is replayed before its modification."""
    box = open_box(tmp_path / "c")
    for i in range(5):
        assert box.append([f"e{i}".encode()])
    seen = []
    while (chunk := box.front()) is not None:
        seen += chunk.events
        assert box.settle(chunk, [], [])
    assert seen == [f"e{i}".encode() for i in range(5)]
    assert box.pending() == 0 and box.pending_bytes() == 0


def test_nothing_is_evicted_silently(tmp_path):
    """diskcache's default eviction is off: 3000 events all stay until settled."""
    box = open_box(tmp_path / "c", max_events=10_000, max_bytes=10**9)
    for _ in range(30):
        box.append([b"x" * 1000] * 100)
    assert box.pending() == 3000
    assert sum(len(c.events) for c in box.chunks()) == 3000


def test_caps_refuse_new_events_and_say_so(tmp_path):
    """Past the count or size cap, append() writes nothing and returns False."""
    box = open_box(tmp_path / "c", max_events=3, max_bytes=100)
    assert box.append([b"a", b"b"])
    assert not box.append([b"c", b"d"])
    assert box.append([b"c"])
    assert box.pending() == 3
    box2 = open_box(tmp_path / "d", max_events=100, max_bytes=10)
    assert not box2.append([b"x" * 11])


def test_partial_settle_keeps_the_rest_in_place(tmp_path):
    """Events still to send stay at the front with their attempt counts."""
    box = open_box(tmp_path / "c")
    box.append([b"a", b"b", b"c"])
    box.append([b"d"])
    chunk = box.front()
    assert box.settle(chunk, [b"b"], [2])
    again = box.front()
    assert again.events == [b"b"] and again.attempts == [2]
    assert box.pending() == 2


def test_settle_refuses_a_chunk_that_changed(tmp_path):
    """A drainer whose lease expired cannot delete what was written since."""
    box = open_box(tmp_path / "c")
    box.append([b"a"])
    stale = box.front()
    assert box.settle(stale, [], [])
    box.append([b"new"])  # may reuse the same queue key
    assert not box.settle(stale, [], [])
    assert box.front().events == [b"new"]


def test_lease_is_exclusive_until_released_or_expired(tmp_path):
    """One drainer at a time; a lease of a dead owner or past its TTL is free."""
    box = open_box(tmp_path / "c")
    me = f"{os.uname().nodename}:{os.getpid()}:a"
    other = f"{os.uname().nodename}:{os.getpid()}:b"
    assert box.acquire_lease("drain", me, 30)
    assert not box.acquire_lease("drain", other, 30)
    assert box.acquire_lease("drain", me, 30)  # renewal
    box.release_lease("drain", me)
    assert box.acquire_lease("drain", other, 0)  # a lease that is already over
    assert box.lease_holder("drain") is None
    assert box.acquire_lease("drain", me, 30)


def test_lease_of_a_dead_process_is_taken_over(tmp_path):
    """A SIGKILLed drainer does not block others for the whole TTL."""
    box = open_box(tmp_path / "c")
    dead = f"{os.uname().nodename}:999999999:x"
    assert box.acquire_lease("drain", dead, 300)
    assert box.acquire_lease("drain", f"{os.uname().nodename}:{os.getpid()}:me", 300)


def test_dead_letters_keep_the_reason(tmp_path):
    """A refused event is kept with the service's reason, listable and removable."""
    box = open_box(tmp_path / "c")
    box.add_dead(b'{"e":1}', "rejected", "Invalid edge_type")
    (key, value), = box.dead_letters()
    assert value["reason"] == "rejected" and value["detail"] == "Invalid edge_type"
    assert box.dead_count() == 1
    assert box.remove_dead([key]) == 1 and box.dead_count() == 0


def test_cleanup_removes_only_old_entries(tmp_path):
    """Age-based cleanup counts what it removed."""
    box = open_box(tmp_path / "c")
    box.append([b"old"])
    box.add_dead(b"old", "r", "d")
    import time
    counts = box.cleanup(3600, now=time.time() + 7200)
    assert counts == {"expired_events": 1, "expired_dead_letters": 1}
    box.append([b"new"])
    assert box.cleanup(3600) == {"expired_events": 0, "expired_dead_letters": 0}


def test_directory_and_files_are_private(tmp_path):
    """The cache holds users' code: 0700 directory, 0600 files, even under umask 022."""
    old = os.umask(0o022)
    try:
        box = open_box(tmp_path / "c")
        box.append([b"secret code"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700
    Outbox(str(tmp_path / "c"), max_events=10, max_bytes=100)
    for name in os.listdir(tmp_path / "c"):
        assert stat.S_IMODE(os.stat(tmp_path / "c" / name).st_mode) & 0o077 == 0, name


def test_symlinked_directory_is_refused(tmp_path):
    """A symlink planted where the cache should be is not followed."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    os.symlink(target, tmp_path / "link")
    with pytest.raises(CacheError, match="symlink"):
        prepare_directory(str(tmp_path / "link"))


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    """A clear error, not a traceback from SQLite."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(CacheError):
        prepare_directory(str(tmp_path / "f"))


def test_small_chunks_are_read_together_up_to_a_batch(tmp_path):
    """One-event chunks (one per hook call) come back as one batch, in order, capped."""
    box = open_box(tmp_path / "c")
    for i in range(7):
        box.append([f"e{i}".encode()])
    chunks = box.front_chunks(5)
    assert [e for c in chunks for e in c.events] == [f"e{i}".encode() for i in range(5)]
    box.settle_many([(c, [], []) for c in chunks])
    assert [e for c in box.front_chunks(5) for e in c.events] == [b"e5", b"e6"]
    assert box.pending() == 2


def test_a_chunk_larger_than_a_batch_comes_alone(tmp_path):
    """A big chunk is returned by itself; the drainer sends it in slices."""
    box = open_box(tmp_path / "c")
    box.append([b"x"] * 10)
    box.append([b"y"])
    assert [len(c.events) for c in box.front_chunks(5)] == [10]


def test_a_live_lease_is_never_taken_over_whatever_the_ttls(tmp_path):
    """A holder with a longer TTL than the taker's is still the holder (was taken over)."""
    box = Outbox(str(tmp_path / "c"), max_events=100, max_bytes=10**6)
    me = f"{os.uname().nodename}:{os.getpid()}:a"
    assert box.acquire_lease("drain", me, ttl_s=300)
    assert not box.acquire_lease("drain", "other-host:1:b", ttl_s=30)
    assert box.acquire_lease("drain", me, ttl_s=300)  # the holder renews
    box.release_lease("drain", me)
    assert box.acquire_lease("drain", "other-host:1:b", ttl_s=30)
    box.close()


def test_chunks_fill_the_outbox_up_to_its_cap(tmp_path):
    """A cap below the chunk size still takes events: the chunk is cut to what fits."""
    box = open_box(tmp_path / "c", max_events=50, max_bytes=10**6)
    assert box.append_chunks([b"e%d" % i for i in range(120)], chunk_size=100) == 50
    assert box.pending() == 50
    assert box.append_chunks([b"x"], chunk_size=100) == 0
    sized = open_box(tmp_path / "d", max_events=100, max_bytes=10)
    assert sized.append_chunks([b"aaaa", b"bbbb", b"cccc"], chunk_size=100) == 2
