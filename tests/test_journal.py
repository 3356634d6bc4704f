"""The journal: one write per event, a watermark, rotation, adoption of dead writers."""

import os

import pytest

from pattern_track.store.journal import Journal, adopt_orphans, orphans_waiting


def test_rotation_never_reuses_a_live_segment(tmp_path):
    """Settled segments go and new ones get fresh names: appending never waits on itself."""
    journal = Journal(str(tmp_path), max_bytes=10**9, segment_bytes=8192)
    for _ in range(50):
        seq = journal.append(b'{"n":"%s"}' % (b"x" * 3000))
        journal.ack(seq)  # settled at once: old segments are deleted as we go
    names = os.listdir(tmp_path / "journal")
    assert len(names) <= 2 and journal.next_seq == 50
    assert max(int(n.split(".")[1]) for n in names) > 10  # it did rotate, many times


def test_watermark_and_adoption_of_a_dead_writer(tmp_path):
    """Only events at or past the watermark are adopted, in order; the files then go."""
    journal = Journal(str(tmp_path), max_bytes=10**9)
    for i in range(10):
        journal.append(b'{"n":%d}' % i)
    journal.ack(4)
    assert orphans_waiting(str(tmp_path)) == 0  # we hold the lock: alive
    assert adopt_orphans(str(tmp_path), lambda events: len(events)) == 0
    for segment in journal._segments:  # the writer dies: the kernel drops its locks
        segment.close(unlink=False)
    assert orphans_waiting(str(tmp_path)) == 1
    got = []
    assert adopt_orphans(str(tmp_path), lambda events: got.extend(events) or len(events)) == 6
    assert got == [b'{"n":%d}' % i for i in range(4, 10)]
    assert os.listdir(tmp_path / "journal") == []


def test_the_journal_makes_the_cache_private_and_refuses_a_symlink(tmp_path):
    """A fresh cache gets 0700 from the first event; a symlinked cache is refused, not followed."""
    import pytest

    from pattern_track.errors import CacheError

    cache = tmp_path / "fresh" / "cache"
    Journal(str(cache), max_bytes=10**6).append(b"{}")
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(CacheError):
        Journal(str(tmp_path / "link"), max_bytes=10**6).append(b"{}")


def test_a_forked_child_never_writes_its_parents_journal(tmp_path):
    """After fork the child writes a journal of its own; the parent's file is untouched by it."""
    journal = Journal(str(tmp_path), max_bytes=10**9)
    journal.append(b'{"who":"parent"}')
    parent_files = set(os.listdir(tmp_path / "journal"))
    pid = os.fork()
    if pid == 0:
        journal.append(b'{"who":"child"}')
        os._exit(0)
    os.waitpid(pid, 0)
    files = set(os.listdir(tmp_path / "journal"))
    assert len(files - parent_files) == 1
    (parent,) = parent_files
    assert b"child" not in (tmp_path / "journal" / parent).read_bytes()


def test_a_torn_line_is_skipped_and_an_appended_ack_still_counts(tmp_path):
    """The preallocated tail is NUL bytes: a line cut by a crash is skipped; an adopter's
    watermark appended after the NULs is read."""
    from pattern_track.store.orphans import _events, _watermark

    journal = Journal(str(tmp_path), max_bytes=10**9)
    for i in range(3):
        journal.append(b'{"n":%d}' % i)
    segment = journal._segments[-1]
    segment.put(b'3 {"n":3, "torn')  # the copy a SIGKILL interrupted: no newline
    path = segment.path
    segment.close(unlink=False)
    with open(path, "ab") as handle:  # what adopt_orphans appends when the outbox is full
        handle.write(b"!2\n")
    assert [seq for seq, _ in _events(path)] == [0, 1, 2]
    assert _watermark(path) == 2
    assert os.path.getsize(path) >= 256 * 1024  # preallocated: a full disk fails at open


def test_a_full_disk_fails_at_segment_open_not_later(tmp_path, monkeypatch):
    """ENOSPC from the preallocation is an OSError at open (the tracker falls back to memory)."""
    import errno

    import pytest

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(OSError):
        Journal(str(tmp_path), max_bytes=10**9).append(b"{}")
    assert os.listdir(tmp_path / "journal") == []  # nothing half-made left behind


def test_an_append_nested_inside_an_append_is_queued_not_overwritten(tmp_path, monkeypatch):
    """A signal handler's track() runs inside append() on the same thread: both lines are
    written, whole and once, and every sequence number is accounted for."""
    from pattern_track.store import journal as module
    from pattern_track.store.orphans import _events

    j = Journal(str(tmp_path), max_bytes=10**9)
    real_put = module._Segment.put
    nested = []

    def put_with_a_signal(segment, line):
        if not nested:  # the first copy is interrupted by a handler that tracks twice
            nested.append(j.append(b'{"who":"handler1"}'))
            nested.append(j.append(b'{"who":"handler2"}'))
        return real_put(segment, line)

    monkeypatch.setattr(module._Segment, "put", put_with_a_signal)
    outer = j.append(b'{"who":"outer"}')
    monkeypatch.setattr(module._Segment, "put", real_put)
    after = j.append(b'{"who":"after"}')
    events = dict(_events(j._segments[-1].path))
    assert sorted(events) == sorted([outer, *nested, after]) and j.next_seq == 4
    assert {events[s] for s in nested} == {b'{"who":"handler1"}', b'{"who":"handler2"}'}


def test_a_refused_event_takes_no_sequence_number(tmp_path):
    """Memory counts journal-only events as a range of numbers: a refusal must leave no hole."""
    from pattern_track.store.journal import JournalFull

    journal = Journal(str(tmp_path), max_bytes=200)
    assert journal.append(b'{"a":1}') == 0
    with pytest.raises(JournalFull):
        journal.append(b'{"big":"' + b"x" * 300 + b'"}')
    assert journal.append(b'{"a":2}') == 1
    journal.close()
