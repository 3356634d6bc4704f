"""The read client (delivery/readback.py) against a loopback collector, through the real Transport."""

from __future__ import annotations

import socket

import pytest
import requests

from pattern_track import Tracker
from pattern_track.config import Config
from pattern_track.delivery import readback
from pattern_track.delivery.readback import NODE_EVENTS, ReadUnknown, evolution, is_stored, walk
from pattern_track.delivery.transport import Answer, NoAnswer, Transport

TRACK = "/api/pattern-traceability/lineage/track"


@pytest.fixture
def get(collector):
    transport = Transport(Config.from_env({}, base_url=collector.url))
    yield transport.get
    transport.close()


def post(c, event):
    answer = requests.post(c.url + TRACK, json=event, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer


def created(pid, version="1.0.0", kind="pattern_created"):
    return {"event_type": kind, "pattern_id": pid, "pattern_version": version, "pattern_data": {"code": pid}}


def derived(pid, *parents, kind="pattern_modified", version="1.0.0"):
    return {"event_type": kind, "pattern_id": pid, "pattern_version": version, "parent_pattern_ids": list(parents)}


def chain(c):
    """a -> b (modified), c, b + c -> d (merged), d -> e (modified)."""
    for event in (created("a"), derived("b", "a"), created("c"), derived("d", "b", "c", kind="pattern_merged"),
                  derived("e", "d")):
        post(c, event)


def fake(status, body=b"", *, raises=None):
    """A get callable that answers every path the same way (or raises), recording the paths."""
    paths = []

    def get(path, timeout_s):
        paths.append(path)
        if raises is not None:
            raise raises
        return Answer(status, {}, body)

    get.paths = paths
    return get


def pairs(doc):
    return sorted((e["source_pattern_id"], e["target_pattern_id"]) for e in doc["edges"])


def node_ids(doc):
    return sorted({n["pattern_id"] for n in doc["nodes"]})


# -- evolution ------------------------------------------------------------------------


def test_evolution_returns_the_routes_data(collector, get):
    """evolution() is the route's data: the id's nodes and the edges into and out of them."""
    chain(collector)
    data = evolution(get, "d", timeout_s=5.0)
    assert data["pattern_id"] == "d" and data["total_versions"] == 1
    assert [n["version"] for n in data["evolution_nodes"]] == ["1.0.0"]
    assert sorted((e["source_pattern_id"], e["target_pattern_id"]) for e in data["evolution_edges"]) == [
        ("b", "d"), ("c", "d"), ("d", "e")]


def test_evolution_of_nothing_stored_is_none(collector, get):
    """The route's own 404 means nothing is stored: None."""
    assert evolution(get, "ghost", timeout_s=5.0) is None


def test_evolution_quotes_the_id(collector, get):
    """Ids with spaces, ?, # and % reach the route intact."""
    odd = "sp ace?q=1#frag%41"
    post(collector, created(odd))
    assert evolution(get, odd, timeout_s=5.0)["evolution_nodes"][0]["pattern_id"] == odd


def test_evolution_of_an_unroutable_id_is_unknown_not_absent(collector, get):
    """A 404 that is not the route's (an id with '/', which the service cannot route) is ReadUnknown, never None."""
    post(collector, created("a/b"))
    with pytest.raises(ReadUnknown) as caught:
        evolution(get, "a/b", timeout_s=5.0)
    assert caught.value.reason == "no_route" and caught.value.status == 404


@pytest.mark.parametrize("mode,status", [("degraded", 503), ("db_down", 500)])
def test_evolution_without_a_database_is_unknown(collector, get, mode, status):
    """503 (no pool) and 500 (query failed) raise ReadUnknown server_error with the service's text."""
    post(collector, created("a"))
    collector.set_fault(mode)
    with pytest.raises(ReadUnknown) as caught:
        evolution(get, "a", timeout_s=5.0)
    assert (caught.value.reason, caught.value.status) == ("server_error", status)
    assert ("Evolution path query failed" in caught.value.detail) == (mode == "db_down")


def test_evolution_of_an_html_page_is_unreadable(collector, get):
    """A 200 that is not the route's JSON (a sign-in page) is ReadUnknown unreadable."""
    collector.set_fault("html")
    with pytest.raises(ReadUnknown) as caught:
        evolution(get, "a", timeout_s=5.0)
    assert caught.value.reason == "unreadable"


def test_evolution_without_an_answer_is_unknown():
    """Nothing listening: the transport's NoAnswer becomes ReadUnknown no_answer, naming its reason."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = Transport(Config.from_env({}, base_url=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ReadUnknown) as caught:
            evolution(transport.get, "a", timeout_s=2.0)
    finally:
        transport.close()
    assert caught.value.reason == "no_answer" and caught.value.status is None
    assert "refused" in caught.value.detail and isinstance(caught.value.__cause__, NoAnswer)


@pytest.mark.parametrize("status,body,reason", [
    (429, b'{"detail": "Rate limit exceeded"}', "rate_limited"),
    (502, b"<html>Bad Gateway</html>", "server_error"),
    (307, b"", "unexpected_status"),
    (400, b'{"detail": "nope"}', "unexpected_status"),
    (404, b'{"detail": "Not Found"}', "no_route"),
    (200, b"", "unreadable"),
    (200, b'{"success": true, "data": {"pattern_id": "other", "evolution_nodes": [], "evolution_edges": []}}',
     "unreadable"),
    (200, b'{"success": true, "data": {"pattern_id": "a", "evolution_nodes": [{"node_id": 1}], '
          b'"evolution_edges": []}}', "unreadable"),
    (200, b'{"success": false, "error": "x"}', "unreadable"),
])
def test_evolution_answers_that_do_not_tell(status, body, reason):
    """Every answer but a 200 document or the route's 404 raises ReadUnknown with its reason and status."""
    with pytest.raises(ReadUnknown) as caught:
        evolution(fake(status, body), "a", timeout_s=1.0)
    assert (caught.value.reason, caught.value.status) == (reason, status)
    assert reason in readback.REASONS


def test_evolution_refuses_an_empty_id():
    """An empty pattern id is a ValueError, not a request."""
    get = fake(200)
    with pytest.raises(ValueError):
        evolution(get, "", timeout_s=1.0)
    assert get.paths == []


# -- is_stored ------------------------------------------------------------------------


def setup_parents(c):
    post(c, created("p"))
    post(c, created("q"))


@pytest.mark.parametrize("event", [
    created("n"), created("n", kind="pattern_validated"), derived("n", "p"), derived("n", "p", kind="pattern_forked"),
    derived("n", "p", "q", kind="pattern_merged"),
], ids=lambda e: e["event_type"])
def test_is_stored_for_each_node_event(collector, get, event):
    """A node-creating event is not stored before it is sent and is once the service took it."""
    setup_parents(collector)
    assert event["event_type"] in NODE_EVENTS
    assert is_stored(event, evolution(get, "n", timeout_s=5.0)) is False
    post(collector, event)
    assert is_stored(event, evolution(get, "n", timeout_s=5.0)) is True


@pytest.mark.parametrize("kind", ["pattern_applied", "pattern_deprecated", "no_such_type"])
def test_is_stored_refuses_events_that_create_no_node(collector, get, kind):
    """Applications and deprecations create no node: is_stored raises ValueError rather than guess."""
    post(collector, created("n"))
    with pytest.raises(ValueError):
        is_stored({"event_type": kind, "pattern_id": "n"}, evolution(get, "n", timeout_s=5.0))


def test_is_stored_needs_the_version_and_the_edges(collector, get):
    """The node alone does not make a derivation stored: it needs its version and an edge
    from each parent that counts."""
    setup_parents(collector)
    post(collector, created("n"))
    doc = evolution(get, "n", timeout_s=5.0)
    assert is_stored(created("n", version="2.0.0"), doc) is False
    assert is_stored(derived("n", "p"), doc) is False  # the node exists, not the edge from p
    post(collector, derived("m", "p", "q", kind="pattern_merged"))
    merged = evolution(get, "m", timeout_s=5.0)
    assert is_stored(derived("m", "p", "q", kind="pattern_merged"), merged) is True
    assert is_stored(derived("m", "q", "p", "n", kind="pattern_merged"), merged) is False
    post(collector, derived("f", "p", "q", kind="pattern_modified"))  # only the first parent counts
    assert is_stored(derived("f", "p", "q"), evolution(get, "f", timeout_s=5.0)) is True


def test_is_stored_takes_the_services_default_version(collector, get):
    """An event without pattern_version is judged against "1.0.0", what the service stores."""
    event = {"event_type": "pattern_created", "pattern_id": "v", "pattern_data": {"c": 1}}
    post(collector, event)
    assert is_stored(event, evolution(get, "v", timeout_s=5.0)) is True


def test_is_stored_refuses_a_doc_of_another_pattern(collector, get):
    """Judging an event against another id's evolution is a caller's mistake: ValueError."""
    post(collector, created("a"))
    with pytest.raises(ValueError):
        is_stored(created("b"), evolution(get, "a", timeout_s=5.0))


def test_is_stored_knows_every_node_event_a_tracker_sent(collector, get, tmp_path):
    """Each node-creating event a Tracker delivered is recognised as stored from the wire event it sent."""
    tracker = Tracker(collector.url, cache_dir=str(tmp_path / "cache"), health_check_interval_s=60.0)
    try:
        first = tracker.track_pattern_creation("x = 1", {"language": "python", "file_path": "a.py"})
        second = tracker.track_pattern_modification(first, "x = 2", {"language": "python"})
        other = tracker.track_pattern_creation("y = 1", {"language": "python"})
        tracker.track_pattern_merge([second, other], "x = 2\ny = 1", {"language": "python"})
        tracker.track_pattern_creation("z = 1", {"language": "python"}, parent_pattern_ids=[first])
        tracker.track_pattern_application(first, {"file_path": "b.py"})
        assert tracker.flush(10.0)
    finally:
        tracker.close(timeout=2.0)
    sent = [e for e in collector.events() if e["event_type"] in NODE_EVENTS]
    assert {e["event_type"] for e in sent} == {"pattern_created", "pattern_modified", "pattern_merged",
                                               "pattern_forked"}
    for event in sent:
        assert is_stored(event, evolution(get, event["pattern_id"], timeout_s=5.0)), event["event_type"]


# -- walk -----------------------------------------------------------------------------


def test_walk_follows_ancestors_and_descendants(collector, get):
    """From d: ancestors b, a and c, descendant e; from b: ancestor a, descendants d and e, not d's other parent c."""
    chain(collector)
    from_d = walk(get, "d", depth=10, timeout_s=10.0)
    assert node_ids(from_d) == ["a", "b", "c", "d", "e"]
    assert pairs(from_d) == [("a", "b"), ("b", "d"), ("c", "d"), ("d", "e")]
    assert from_d["unreachable"] == {} and from_d["truncated"] == {}
    from_b = walk(get, "b", depth=10, timeout_s=10.0)
    assert node_ids(from_b) == ["a", "b", "d", "e"] and pairs(from_b) == [("a", "b"), ("b", "d"), ("d", "e")]
    assert len({e["edge_id"] for e in from_b["edges"]}) == len(from_b["edges"])
    assert len({n["node_id"] for n in from_b["nodes"]}) == len(from_b["nodes"])


def test_walk_stops_at_depth(collector, get):
    """depth bounds the hops each way; what lies beyond is named in truncated, its edges left out."""
    chain(collector)
    one = walk(get, "d", depth=1, timeout_s=10.0)
    assert node_ids(one) == ["b", "c", "d", "e"] and one["truncated"] == {"a": "depth"}
    assert pairs(one) == [("b", "d"), ("c", "d"), ("d", "e")]
    alone = walk(get, "d", depth=0, timeout_s=10.0)
    assert node_ids(alone) == ["d"] and alone["edges"] == [] and alone["requests"] == 1
    assert alone["truncated"] == {"b": "depth", "c": "depth", "e": "depth"}


def test_walk_fetches_each_pattern_once(collector, get):
    """In a diamond (a -> b, a -> c, b + c -> d) a is fetched once, though two paths lead to it."""
    for event in (created("a"), derived("b", "a"), derived("c", "a", kind="pattern_forked"),
                  derived("d", "b", "c", kind="pattern_merged")):
        post(collector, event)
    paths = []

    def counting(path, timeout_s):
        paths.append(path)
        return get(path, timeout_s)

    doc = walk(counting, "d", depth=10, timeout_s=10.0)
    assert node_ids(doc) == ["a", "b", "c", "d"] and len(doc["edges"]) == 4
    assert len(paths) == len(set(paths)) == doc["requests"] == 4


def test_walk_ends_on_cycles_between_versions(collector, get):
    """a 1.0.0 -> b -> a 2.0.0 is a cycle between ids; the walk ends and lists both versions of a."""
    for event in (created("a"), derived("b", "a"), derived("a", "b", version="2.0.0")):
        post(collector, event)
    doc = walk(get, "a", depth=50, timeout_s=10.0)
    assert sorted((n["pattern_id"], n["version"]) for n in doc["nodes"]) == [("a", "1.0.0"), ("a", "2.0.0"),
                                                                         ("b", "1.0.0")]
    assert pairs(doc) == [("a", "b"), ("b", "a")] and doc["requests"] == 2


def test_walk_bounds_its_requests(collector, get):
    """max_requests caps the fetches; the ids left are truncated "max_requests"."""
    chain(collector)
    doc = walk(get, "d", depth=10, timeout_s=10.0, max_requests=2)
    assert doc["requests"] == 2 and "max_requests" in doc["truncated"].values()
    assert len(node_ids(doc)) == 2


def test_walk_keeps_to_its_time_budget(collector, get):
    """Once timeout_s has passed on the walk's clock, the ids left are truncated "deadline", not fetched."""
    chain(collector)
    now = [0.0]

    def slow_get(path, timeout_s):
        now[0] += 6.0  # each answer takes six seconds on the walk's clock
        return get(path, timeout_s)

    doc = walk(slow_get, "d", depth=10, timeout_s=10.0, clock=lambda: now[0])
    assert doc["requests"] == 2 and "deadline" in doc["truncated"].values()


def test_walk_names_unreachable_ids_and_goes_on(collector, get):
    """An id whose read fails is in unreachable with its reason; the rest of the walk goes on."""
    chain(collector)

    def failing_b(path, timeout_s):
        if "/lineage/b/" in path:
            return Answer(500, {}, b'{"success": false, "error": "Evolution path query failed: boom"}')
        return get(path, timeout_s)

    doc = walk(failing_b, "d", depth=10, timeout_s=10.0)
    assert doc["unreachable"] == {"b": "server_error"}
    assert node_ids(doc) == ["c", "d", "e"] and pairs(doc) == [("c", "d"), ("d", "e")]


def test_walk_of_nothing_stored_is_none_and_of_an_unreadable_start_raises(collector, get):
    """The start not stored is None; the start unreadable raises ReadUnknown (no partial answer)."""
    assert walk(get, "ghost", depth=3, timeout_s=5.0) is None
    with pytest.raises(ReadUnknown):
        walk(fake(503, b'{"detail": "Database connection not available"}'), "a", depth=3, timeout_s=5.0)
    with pytest.raises(ReadUnknown) as caught:
        walk(fake(0, raises=NoAnswer("refused", "refused")), "a", depth=3, timeout_s=5.0)
    assert caught.value.reason == "no_answer"


@pytest.mark.parametrize("options", [{"depth": -1}, {"max_requests": 0}, {"timeout_s": 0}])
def test_walk_refuses_bad_bounds(options):
    """A negative depth, no request allowed or no time is a ValueError before any request."""
    get = fake(200)
    with pytest.raises(ValueError):
        walk(get, "a", **{"depth": 1, "timeout_s": 1.0, **options})
    assert get.paths == []


def test_transport_without_watchdog_starts_no_thread(collector):
    """Transport(watchdog=False), as the lineage command uses it, answers without starting its deadline thread."""
    import threading

    before = {t.ident for t in threading.enumerate() if t.name == "pattern_track-deadline"}
    transport = Transport(Config.from_env({}, base_url=collector.url), watchdog=False)
    try:
        assert evolution(transport.get, "ghost", timeout_s=5.0) is None
        assert {t.ident for t in threading.enumerate() if t.name == "pattern_track-deadline"} <= before
    finally:
        transport.close()
