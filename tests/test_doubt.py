"""The in-doubt list (store/doubt.py): ids of one request keep their order; settled ones leave."""

from pattern_track.store import doubt
from pattern_track.store.outbox import Outbox


def test_ids_of_one_request_keep_their_order_and_leave_when_settled(tmp_path):
    """add() groups a request's ids with their positions; settle() forgets done ones and
    regroups those still in doubt; among() reads them in one go."""
    box = Outbox(str(tmp_path), max_events=100, max_bytes=10**6)
    try:
        doubt.add(box, ["a", "b", "c"])
        doubt.add(box, ["d"])
        got = doubt.among(box, ["a", "b", "c", "d", "x"])
        assert set(got) == {"a", "b", "c", "d"}
        assert [got[i][1] for i in "abc"] == [0, 1, 2] and got["a"][0] == got["c"][0] != got["d"][0]
        doubt.settle(box, done=["a", "b"], still=["c"])
        assert set(doubt.among(box, "abcd")) == {"c", "d"}
        doubt.settle(box, done=["c", "d"])
        assert doubt.among(box, "abcd") == {}
    finally:
        box.close()


def test_the_list_is_bounded_oldest_first(tmp_path, monkeypatch):
    """Past MAX_IDS the oldest ids go first (their events may then be resent twice)."""
    monkeypatch.setattr(doubt, "MAX_IDS", 3)
    box = Outbox(str(tmp_path), max_events=100, max_bytes=10**6)
    try:
        for name in "abcde":
            doubt.add(box, [name])
        assert set(doubt.among(box, "abcde")) == {"c", "d", "e"}
    finally:
        box.close()
