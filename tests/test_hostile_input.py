"""Property-based: whatever track() and the hook are given, the outcome is a counted accept or a
counted drop, never an exception, and one bad event never breaks a batch for the others."""

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pattern_track import Tracker
from pattern_track.cli import hook

leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=50), st.binary(max_size=20), st.just(object()), st.just("\ud800"))
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none()),
                                                  inner, max_size=4),
    st.tuples(inner, inner)), max_leaves=12)
field_names = st.sampled_from(["pattern_id", "pattern_name", "language", "file_path", "tool_name", "pattern_data",
                               "parent_pattern_ids", "edge_type", "transformation_type", "reason",
                               "pattern_type", "pattern_version", "triggered_by", "bogus"])
event_types = st.one_of(st.sampled_from(["pattern_created", "pattern_modified", "pattern_merged", "pattern_applied",
                                         "pattern_forked", "pattern_validated", "pattern_deprecated"]), values)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    # Closed port and an open breaker: no network, so hypothesis runs fast.
    t = Tracker("http://127.0.0.1:9", cache_dir=str(tmp_path_factory.mktemp("hostile")), connect_timeout_s=0.1,
                max_buffer_events=100_000)
    yield t
    t.close(timeout=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_type=event_types, fields=st.dictionaries(field_names, values, max_size=6))
def test_track_counts_every_outcome(tracker, event_type, fields):
    """Any type, non-JSON value, recursion, NaN, bad unicode, odd keys: accept or counted drop."""
    before = tracker.stats()
    result = tracker.track(event_type, **fields)
    after = tracker.stats()
    dropped = sum(after["dropped"].values()) - sum(before["dropped"].values())
    accepted = after["accepted"] - before["accepted"]
    assert ((result is None and dropped == 1 and accepted == 0)
            or (isinstance(result, str) and accepted == 1 and dropped == 0))


def test_recursive_and_huge_values_are_counted_drops(tracker):
    """A self-referencing dict and a 2 MB string are refused with their reasons."""
    loop = {"code": "x"}
    loop["again"] = loop
    assert tracker.track("pattern_created", pattern_id="r", pattern_data=loop) is None
    assert tracker.track("pattern_created", pattern_id="h", pattern_data={"code": "x" * 2_000_000}) is None
    dropped = tracker.stats()["dropped"]
    assert dropped.get("not_json", 0) >= 1 and dropped.get("too_large", 0) >= 1


@settings(max_examples=200, deadline=None)
@given(payload=st.one_of(st.binary(max_size=300), values.map(lambda v: json.dumps(v, default=repr).encode()),
                         st.fixed_dictionaries({
                             "hook_event_name": st.just("PostToolUse"),
                             "tool_name": st.sampled_from(["Write", "Edit", "MultiEdit", "NotebookEdit"]),
                             "tool_input": values, "tool_response": values,
                         }).map(lambda v: json.dumps(v, default=repr).encode())))
def test_hook_always_exits_zero(payload, tmp_path_factory):
    """The hook returns 0 for any bytes on stdin and never raises."""
    cache = str(tmp_path_factory.mktemp("hook"))
    assert hook.run(io.BytesIO(payload), {"PATTERN_CACHE_DIR": cache}, spawn=False) == 0


# One bad event among good ones in a batch: tests/test_delivery.py::test_one_bad_event_rejecting_a_batch_is_resent_alone
