"""Event checks and the pattern id scheme."""

import json
import math

import pytest

from pattern_track import event


def build(event_type="pattern_created", **fields):
    fields.setdefault("pattern_id", "p1")
    if event_type in ("pattern_created", "pattern_validated"):
        fields.setdefault("pattern_data", {"code": "x"})
    return event.build(event_type, fields, triggered_by="test")


def test_pattern_id_keeps_the_original_scheme():
    """Ids match what the original library stored (wire-contract.md example)."""
    assert event.pattern_id_for("def f(): pass", "python", None) == "python-code-226225de545b"
    assert event.pattern_id_for("x", None, None).startswith("unknown-code-")


def test_event_gets_a_stable_id_last_in_pattern_data():
    """Each event carries a fresh 128-bit id inside pattern_data (stored verbatim)."""
    one, two = build(), build()
    assert len(event.event_id_of(one)) == 32
    assert event.event_id_of(one) != event.event_id_of(two)
    assert list(one["pattern_data"])[-1] == event.EVENT_ID_KEY


def test_language_is_always_sent_from_the_file_extension():
    """An omitted language would be stored as python: we send the real one, or null."""
    assert build(file_path="/a/b.ts")["language"] == "typescript"
    assert build(file_path="/a/b.unknownext")["language"] is None
    assert build(language="go", file_path="/a/b.py")["language"] == "go"


@pytest.mark.parametrize("event_type,fields,reason", [
    ("pattern_created", {"pattern_data": {}}, "empty_pattern_data"),
    ("pattern_validated", {"pattern_data": {}}, "empty_pattern_data"),
    ("nope", {}, "invalid_event_type"),
    ("pattern_created", {"pattern_id": ""}, "missing_pattern_id"),
    ("pattern_created", {"pattern_id": "x" * 256}, "field_too_long"),
    ("pattern_created", {"edge_type": "created_from"}, "invalid_edge_type"),
    ("pattern_modified", {"parent_pattern_ids": ["a"], "transformation_type": "modification"},
     "invalid_transformation_type"),
    ("pattern_modified", {}, "missing_parent"),
    ("pattern_forked", {}, "missing_parent"),
    ("pattern_merged", {"parent_pattern_ids": ["a"]}, "missing_parent"),
    ("pattern_created", {"pattern_nmae": "typo"}, "unknown_field"),
    ("pattern_created", {"pattern_data": [1]}, "invalid_field"),
    ("pattern_created", {"parent_pattern_ids": "a"}, "invalid_field"),
    ("pattern_created", {"tool_name": 3}, "invalid_field"),
])
def test_contract_errors_are_refused_with_a_reason(event_type, fields, reason):
    """Whatever the service would answer 400/422 to is refused before it leaves."""
    with pytest.raises(event.InvalidEvent) as info:
        build(event_type, **fields)
    assert info.value.reason == reason


@pytest.mark.parametrize("data,reason", [
    ({"x": math.nan}, "not_json"),
    ({"x": object()}, "not_json"),
    ({"x": "\ud800"}, "invalid_unicode"),
])
def test_values_json_cannot_carry_are_refused(data, reason):
    """NaN, arbitrary objects and lone surrogates never reach the wire."""
    with pytest.raises(event.InvalidEvent) as info:
        event.encode(build(pattern_data=data))
    assert info.value.reason == reason


def test_recursive_data_is_refused():
    """A self-containing dict is a counted refusal, not a crash."""
    data = {"code": "x"}
    data["self"] = data
    with pytest.raises(event.InvalidEvent):
        event.encode(build(pattern_data=data))


def test_encoding_is_compact_utf8_json():
    """The bytes are valid JSON the collector parses back to the same event."""
    ev = build(pattern_data={"code": "é"})
    assert json.loads(event.encode(ev)) == ev


def test_refusal_logs_name_the_reason_and_size_never_the_content(caplog, tmp_path):
    """Code passed by mistake as the event type or an enum is not echoed into the logs."""
    import logging

    from pattern_track import Tracker

    secret = "def leaked_secret(): return 'hunter2'"
    tracker = Tracker("http://127.0.0.1:9", cache_dir=str(tmp_path / "c"))
    with caplog.at_level(logging.DEBUG, logger="pattern_track"):
        assert tracker.track(secret, pattern_id="p") is None
        assert tracker.track("pattern_modified", pattern_id="p", parent_pattern_ids=["a"], edge_type=secret) is None
        assert tracker.track("pattern_created", pattern_id="p", pattern_data={"c": 1}, **{secret[:20]: 1}) is None
    assert caplog.records and not any("leaked_secret" in r.getMessage() for r in caplog.records)
    tracker.close()


def test_a_context_that_is_not_a_mapping_is_a_counted_refusal(tmp_path):
    """track_pattern_creation(code, "python") says bad_context, not internal_error."""
    from pattern_track import Tracker

    tracker = Tracker("http://127.0.0.1:9", cache_dir=str(tmp_path / "c"))
    assert tracker.track_pattern_creation("x = 1", "python") is None
    assert tracker.track_pattern_application("p", ["not", "a", "mapping"]) is None
    assert tracker.stats()["dropped"] == {"bad_context": 2}
    tracker.close()
