"""Tests of the reference collector against wire-contract.md, over real loopback HTTP."""

from __future__ import annotations

import concurrent.futures
import datetime
import http.client
import json
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from pattern_track.collector import FAULT_MODES, Collector, main

API = "/api/pattern-traceability"
TRACK = API + "/lineage/track"
BATCH = API + "/lineage/track/batch"
HEALTH = API + "/health"
ROOT = pathlib.Path(__file__).resolve().parents[1]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poll_until(predicate, timeout_s=5.0):
    """Ask predicate() every 20 ms until it holds or timeout_s pass; returns its last answer."""
    deadline, tick = time.monotonic() + timeout_s, threading.Event()
    while not predicate() and time.monotonic() < deadline:
        tick.wait(0.02)
    return predicate()


@pytest.fixture
def collector():
    with Collector() as c:
        yield c


def created(pid="p1", version="1.0.0", **extra):
    return {"event_type": "pattern_created", "pattern_id": pid, "pattern_version": version,
            "pattern_data": {"code": "x = 1"}, **extra}


def derived(pid, version, *parents, event_type="pattern_modified", **extra):
    return {"event_type": event_type, "pattern_id": pid, "pattern_version": version,
            "parent_pattern_ids": list(parents), **extra}


def post(c, path, body, timeout=5.0, **kwargs):
    return requests.post(c.url + path, json=body, timeout=timeout, **kwargs)


def raw_request(c, data: bytes, timeout=5.0) -> http.client.HTTPResponse:
    """Send bytes as they are and parse the answer."""
    sock = socket.create_connection(("127.0.0.1", c.port), timeout=timeout)
    sock.sendall(data)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


def post_bytes(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (path.encode(), len(body), extra)) + body


# -- single events -------------------------------------------------------------------


def test_create_modify_apply_merge_deprecate_succeed(collector):
    """A creation, a modification, an application, a merge and a deprecation are all stored."""
    first = post(collector, TRACK, created("a")).json()
    assert first["success"] is True and first["data"]["status"] == "created"
    assert set(first["metadata"]) >= {"correlation_id", "processing_time_ms"}
    mod = post(collector, TRACK, derived("a", "1.1.0", "a", transformation_type="bugfix")).json()
    assert mod["data"]["status"] == "created"
    assert mod["data"]["parent_node_ids"] == [first["data"]["node_id"]]
    applied = post(collector, TRACK, {"event_type": "pattern_applied", "pattern_id": "a"}).json()
    assert applied["data"]["status"] == "recorded"
    assert applied["data"]["node_id"] == mod["data"]["node_id"]  # the newest version
    assert post(collector, TRACK, created("b")).status_code == 200
    merged = post(collector, TRACK, derived("m", "1.0.0", "a", "b", event_type="pattern_merged")).json()
    assert merged["data"]["status"] == "created" and len(merged["data"]["parent_node_ids"]) == 2
    forked = post(collector, TRACK, derived("f", "1.0.0", "b", event_type="pattern_forked"))
    assert forked.status_code == 200
    dep = post(collector, TRACK, {"event_type": "pattern_deprecated", "pattern_id": "b"})
    assert dep.status_code == 200
    nodes = {(n["pattern_id"], n["pattern_version"]): n for n in collector.nodes()}
    assert nodes[("a", "1.1.0")]["parents"][0]["edge_type"] == "modified_from"
    assert nodes[("a", "1.1.0")]["parents"][0]["transformation_type"] == "bugfix"
    assert {e["transformation_type"] for e in nodes[("m", "1.0.0")]["parents"]} == {"merge"}
    assert nodes[("b", "1.0.0")]["status"] == "deprecated"
    assert [e["event_type"] for e in collector.events()] == [
        "pattern_created", "pattern_modified", "pattern_applied", "pattern_created",
        "pattern_merged", "pattern_forked", "pattern_deprecated"]


def test_duplicate_creation_answers_already_exists_and_logs_both(collector):
    """A second creation of the same id and version is a 200 already_exists, and both events are logged."""
    first = post(collector, TRACK, created()).json()
    second = post(collector, TRACK, created())
    assert second.status_code == 200
    assert second.json()["data"]["status"] == "already_exists"
    assert second.json()["data"]["node_id"] == first["data"]["node_id"]
    assert len(collector.nodes()) == 1 and len(collector.events()) == 2


def test_duplicate_modification_answers_like_the_first(collector):
    """A resent modification gets the same data as the first answer, with no marker."""
    post(collector, TRACK, created("a"))
    first = post(collector, TRACK, derived("a", "2.0.0", "a")).json()
    again = post(collector, TRACK, derived("a", "2.0.0", "a"))
    assert again.status_code == 200 and again.json()["data"] == first["data"]
    assert len(collector.events()) == 3


def test_defaults_and_unknown_fields(collector):
    """Omitted fields take the service defaults, explicit null language stays None, unknown fields are dropped."""
    post(collector, TRACK, {"event_type": "pattern_created", "pattern_id": "d",
                            "pattern_data": {"k": 1}, "surprise": True})
    post(collector, TRACK, created("e", language=None))
    first, second = collector.events()
    assert first["pattern_name"] == "" and first["pattern_type"] == "code"
    assert first["pattern_version"] == "1.0.0" and first["language"] == "python"
    assert first["triggered_by"] == "api" and first["tool_name"] is None
    assert "surprise" not in first
    assert second["language"] is None


def test_creation_ignores_parents(collector):
    """pattern_created ignores parent_pattern_ids: no parent lookup and no edge."""
    response = post(collector, TRACK, created("c", parent_pattern_ids=["ghost"], edge_type="derived_from"))
    assert response.status_code == 200
    assert collector.nodes()[0]["parents"] == []


@pytest.mark.parametrize("event", [
    created(event_type="pattern_updated"),
    created(pid=""),
    created(edge_type="created_from"),
    created(transformation_type="modification"),
    {"event_type": "pattern_created", "pattern_id": "x"},
    {"event_type": "pattern_validated", "pattern_id": "x", "pattern_data": {}},
    derived("x", "2.0.0"),
    derived("x", "2.0.0", event_type="pattern_forked"),
    derived("x", "2.0.0", "p1", event_type="pattern_merged"),
], ids=["event_type", "empty_id", "edge_type", "transformation_type", "created_no_data",
        "validated_empty_data", "modified_no_parents", "forked_no_parents", "merge_one_parent"])
def test_contract_errors_are_400_detail(collector, event):
    """Each contract error is a 400 with a string detail, and nothing is stored."""
    response = post(collector, TRACK, event)
    assert response.status_code == 400
    assert set(response.json()) == {"detail"} and isinstance(response.json()["detail"], str)
    assert collector.events() == []


@pytest.mark.parametrize("field,limit", [
    ("pattern_id", 255), ("pattern_name", 255), ("pattern_type", 100), ("pattern_version", 50),
    ("tool_name", 255), ("language", 50), ("triggered_by", 100)])
def test_too_long_fields_are_truncation_errors(collector, field, limit):
    """A field over its column length is a 400 StringDataRightTruncationError; at the limit it is stored."""
    response = post(collector, TRACK, {**created(), field: "x" * (limit + 1)})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and "too long" in body["error"]
    assert body["metadata"]["error_type"] == "StringDataRightTruncationError"
    assert post(collector, TRACK, {**created(), field: "x" * limit}).status_code == 200


@pytest.mark.parametrize("event", [
    derived("x", "2.0.0", "ghost"),
    derived("x", "2.0.0", "ghost", event_type="pattern_forked"),
    derived("x", "1.0.0", "p1", "ghost", event_type="pattern_merged"),
    {"event_type": "pattern_applied", "pattern_id": "ghost"},
    {"event_type": "pattern_deprecated", "pattern_id": "ghost"},
], ids=["modified", "forked", "merged", "applied", "deprecated"])
def test_missing_parent_or_pattern_is_validation_error(collector, event):
    """A parent or pattern that does not exist is a 400 success:false validation_error."""
    post(collector, TRACK, created("p1"))
    response = post(collector, TRACK, event)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and "not found" in body["error"]
    assert body["metadata"]["error_type"] == "validation_error"
    assert len(collector.events()) == 1


@pytest.mark.parametrize("event,error_type", [
    (created(pattern_data={"code": "a\x00b"}), "UntranslatableCharacterError"),
    (created(pattern_data={"nested": [{"k\x00": 1}]}), "UntranslatableCharacterError"),
    (created(file_path="src/a\x00.py"), "CharacterNotInRepertoireError"),
    (created(pattern_name="n\x00"), "CharacterNotInRepertoireError"),
    (derived("x", "2.0.0", "p\x001"), "CharacterNotInRepertoireError"),
], ids=["data_value", "data_key", "file_path", "pattern_name", "parent_id"])
def test_nul_character_is_a_per_event_400(collector, event, error_type):
    """A NUL in pattern_data is UntranslatableCharacterError, in a text field CharacterNotInRepertoireError."""
    post(collector, TRACK, created("p1"))
    response = post(collector, TRACK, event)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"]
    assert body["metadata"]["error_type"] == error_type and "correlation_id" in body["metadata"]
    assert len(collector.events()) == 1


def test_nul_in_a_batch_fails_only_that_event(collector):
    """In a batch, events with a NUL are in failed_results with their error_type; the others are stored."""
    events = [created("a"), created("b", pattern_data={"code": "\x00"}), created("c", file_path="\x00"),
              created("d", pattern_data={"code": "\\u0000 is only text"})]
    response = post(collector, BATCH, {"events": events, "processing_mode": "sequential"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["batch_summary"]["successful_events"] == 2 and body["batch_summary"]["failed_events"] == 2
    assert [(f["event_index"], f["pattern_id"], f["metadata"]["error_type"]) for f in body["failed_results"]] == [
        (1, "b", "UntranslatableCharacterError"), (2, "c", "CharacterNotInRepertoireError")]
    assert [e["pattern_id"] for e in collector.events()] == ["a", "d"]


def test_only_first_parent_of_a_modification_is_used(collector):
    """A modification resolves only its first parent, so a missing second parent is not an error."""
    post(collector, TRACK, created("a"))
    assert post(collector, TRACK, derived("b", "1.0.0", "a", "ghost")).status_code == 200


def test_self_loop_is_400_detail(collector):
    """A modification with the same id and version as its parent is a 400 detail."""
    post(collector, TRACK, created("a"))
    response = post(collector, TRACK, derived("a", "1.0.0", "a"))
    assert response.status_code == 400 and "Self-loop" in response.json()["detail"]


@pytest.mark.parametrize("body,loc,kind", [
    ({"pattern_id": "x", "pattern_data": {"a": 1}}, ["body", "event_type"], "missing"),
    ({**created(), "pattern_id": 7}, ["body", "pattern_id"], "string_type"),
    ({**created(), "pattern_data": ["a"]}, ["body", "pattern_data"], "dict_type"),
    ({**created(), "parent_pattern_ids": ["a", 1]}, ["body", "parent_pattern_ids", 1], "string_type"),
    ({**created(), "pattern_name": None}, ["body", "pattern_name"], "string_type"),
    ([created()], ["body"], "model_attributes_type"),
], ids=["missing", "int_id", "data_list", "parent_int", "null_name", "array_body"])
def test_schema_errors_are_422(collector, body, loc, kind):
    """Missing fields and wrong types give a 422 list of {type, loc, msg, input}."""
    response = post(collector, TRACK, body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and error["type"] == kind and {"msg", "input"} <= set(error)


def test_non_json_body_is_422(collector):
    """A body that is not JSON is a 422 json_invalid."""
    response = requests.post(collector.url + TRACK, data=b"{nope", timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_wrong_content_type_is_422(collector):
    """Valid JSON sent as text/plain is a 422, like FastAPI gives."""
    response = requests.post(collector.url + TRACK, data=json.dumps(created()), timeout=5,
                             headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert collector.events() == []


# -- batches -------------------------------------------------------------------------


def test_batch_keeps_order(collector):
    """A sequential batch may create then modify a pattern; results keep the event order."""
    events = [created("a"), derived("a", "2.0.0", "a"), {"event_type": "pattern_applied", "pattern_id": "a"}]
    response = post(collector, BATCH, {"events": events, "processing_mode": "sequential", "batch_id": "b1"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["batch_summary"] == {"total_events": 3, "successful_events": 3, "failed_events": 0,
                                     "handled_duplicates": 0, "processing_mode": "sequential",
                                     "requested_processing_mode": "sequential"}
    assert [r["event_index"] for r in body["successful_results"]] == [0, 1, 2]
    assert body["successful_results"][0]["pattern_id"] == "a"
    assert {"correlation_id", "processing_time_ms"} <= set(body["successful_results"][0]["metadata"])
    assert [e["batch_id"] for e in collector.events()] == ["b1"] * 3


def test_batch_reports_requested_mode_and_duplicates(collector):
    """Without processing_mode the request is reported as parallel; duplicates are already_exists."""
    body = post(collector, BATCH, {"events": [created(), created()]}).json()
    assert body["batch_summary"]["requested_processing_mode"] == "parallel"
    assert body["batch_summary"]["handled_duplicates"] == 0
    assert [r["data"]["status"] for r in body["successful_results"]] == ["created", "already_exists"]


def test_batch_per_event_failures_are_200(collector):
    """Failures of single events come back in failed_results of a 200 with success false."""
    events = [created("ok"), derived("x", "2.0.0", "ghost"), created("long", pattern_type="t" * 101)]
    response = post(collector, BATCH, {"events": events, "processing_mode": "sequential"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["batch_summary"]["successful_events"] == 1 and body["batch_summary"]["failed_events"] == 2
    assert [(f["event_index"], f["pattern_id"], f["metadata"]["error_type"]) for f in body["failed_results"]] == [
        (1, "x", "validation_error"), (2, "long", "StringDataRightTruncationError")]
    assert [e["pattern_id"] for e in collector.events()] == ["ok"]


def test_batch_contract_error_rejects_whole_batch(collector):
    """One contract error makes the whole batch a 400 detail and stores nothing."""
    events = [created("ok"), created("bad", edge_type="created_from")]
    response = post(collector, BATCH, {"events": events, "processing_mode": "sequential"})
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)
    assert collector.events() == [] and collector.nodes() == []


def test_batch_schema_error_is_422(collector):
    """A schema error inside one event of a batch is a 422 that points at it."""
    response = post(collector, BATCH, {"events": [created(), {"event_type": "pattern_created"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 1, "pattern_id"]


def test_empty_batch_is_500(collector):
    """An empty events list is a 500 detail."""
    response = post(collector, BATCH, {"events": []})
    assert response.status_code == 500 and "detail" in response.json()


def test_track_batch_path_is_405(collector):
    """POST /lineage/track-batch is a 405 Method Not Allowed (it matches GET /lineage/{id})."""
    response = post(collector, API + "/lineage/track-batch", {"events": [created()]})
    assert response.status_code == 405 and response.json() == {"detail": "Method Not Allowed"}
    assert requests.get(collector.url + BATCH, timeout=5).status_code == 405
    assert collector.events() == []


def test_unknown_path_is_404(collector):
    """An unknown path is a 404 Not Found."""
    response = requests.get(collector.url + "/api/nothing", timeout=5)
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


# -- read routes ---------------------------------------------------------------------

NODE_KEYS = {"node_id", "pattern_id", "pattern_name", "pattern_type", "version", "generation", "created_at",
             "metadata"}
EDGE_KEYS = {"edge_id", "source_node_id", "target_node_id", "source_pattern_id", "target_pattern_id",
             "source_version", "target_version", "edge_type", "transformation_type", "edge_weight", "created_at",
             "metadata"}


def evolution(c, pid, **kwargs):
    return requests.get(c.url + API + f"/lineage/{pid}/evolution", timeout=5, **kwargs)


def chain(c):
    """The contract's example: a -> b (modified), c, b + c -> d (merged)."""
    for event in (created("a"), derived("b", "1.0.0", "a"), created("c"),
                  derived("d", "1.0.0", "b", "c", event_type="pattern_merged")):
        assert post(c, TRACK, event).status_code == 200


def links(doc):
    return [(e["source_pattern_id"], e["target_pattern_id"], e["edge_type"], e["transformation_type"])
            for e in doc["data"]["evolution_edges"]]


def test_evolution_is_one_hop_in_the_service_shape(collector):
    """Evolution of d has its node and the edges b->d, c->d; of a, the edge a->b; shapes as the service's."""
    chain(collector)
    answer = evolution(collector, "d")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["success"] is True and set(doc["metadata"]) == {"processing_time_ms", "total_nodes", "total_edges"}
    assert (doc["metadata"]["total_nodes"], doc["metadata"]["total_edges"]) == (1, 2)
    assert doc["data"]["pattern_id"] == "d" and doc["data"]["total_versions"] == 1
    [node] = doc["data"]["evolution_nodes"]
    assert set(node) == NODE_KEYS and node["metadata"] == "{}" and node["version"] == "1.0.0"
    assert datetime.datetime.fromisoformat(node["created_at"]).utcoffset() is not None
    assert sorted(links(doc)) == [("b", "d", "merged_from", "merge"), ("c", "d", "merged_from", "merge")]
    for edge in doc["data"]["evolution_edges"]:
        assert set(edge) == EDGE_KEYS and edge["metadata"] == "{}" and edge["target_node_id"] == node["node_id"]
        assert datetime.datetime.fromisoformat(edge["created_at"]).utcoffset() is not None
    assert links(evolution(collector, "a").json()) == [("a", "b", "modified_from", "refactor")]
    middle = evolution(collector, "b").json()["data"]["evolution_edges"]
    assert [(e["source_pattern_id"], e["target_pattern_id"]) for e in middle] == [("a", "b"), ("b", "d")]


def test_evolution_generations_count_from_creations(collector):
    """Generation is 0 for a creation, one more than the parent for a derivation, than the
    deepest parent for a merge."""
    chain(collector)
    post(collector, TRACK, derived("e", "1.0.0", "d", "a", event_type="pattern_merged"))
    generations = {pid: evolution(collector, pid).json()["data"]["evolution_nodes"][0]["generation"] for pid in "abcde"}
    assert generations == {"a": 0, "b": 1, "c": 0, "d": 2, "e": 3}


def test_evolution_lists_every_version_and_edges_between_them(collector):
    """Every version of the id is a node, by generation; a version derived from another is an edge within the id."""
    post(collector, TRACK, created("a"))
    post(collector, TRACK, derived("a", "2.0.0", "a", transformation_type="bugfix"))
    data = evolution(collector, "a").json()["data"]
    assert data["total_versions"] == 2
    assert [(n["version"], n["generation"]) for n in data["evolution_nodes"]] == [("1.0.0", 0), ("2.0.0", 1)]
    [edge] = data["evolution_edges"]  # starts and ends in the id: listed once
    assert (edge["source_version"], edge["target_version"], edge["transformation_type"]) == ("1.0.0", "2.0.0", "bugfix")


def test_evolution_of_an_unknown_id_is_the_routes_404(collector):
    """An id with no node is a 404 {success: false, error: "Pattern not found: <id>", pattern_id}."""
    answer = evolution(collector, "ghost")
    assert answer.status_code == 404
    assert answer.json() == {"success": False, "error": "Pattern not found: ghost", "pattern_id": "ghost"}


def test_read_routes_match_the_decoded_path_like_the_service(collector):
    """An id is read percent-decoded; one holding a slash cannot be routed (the router's 404 {detail})."""
    for pid in ("sp ace", "a/b"):
        assert post(collector, TRACK, created(pid)).status_code == 200
    assert evolution(collector, "sp%20ace").json()["data"]["pattern_id"] == "sp ace"
    routed = evolution(collector, "a%2Fb")
    assert routed.status_code == 404 and routed.json() == {"detail": "Not Found"}


def test_evolution_is_not_rate_limited():
    """The rate window counts the lineage query but never evolution (nor health)."""
    with Collector(rate_limit=1) as c:
        assert post(c, TRACK, created("a")).status_code == 200
        assert post(c, TRACK, created("b")).status_code == 429
        assert [evolution(c, "a").status_code for _ in range(3)] == [200] * 3
        assert requests.get(c.url + API + "/lineage/a?query_type=descendants", timeout=5).status_code == 429
        assert c.state()["rate_limit"]["current_window_requests"] == 1


@pytest.mark.parametrize("mode,status,body", [
    ("degraded", 503, {"success": False, "error": "Database connection not available", "pattern_id": "a"}),
    ("db_down", 500, {"success": False, "error": "Evolution path query failed: [Errno 111] Connect call failed",
                      "pattern_id": "a"}),
])
def test_evolution_without_a_database(collector, mode, status, body):
    """degraded (no pool) is a 503 {success: false, error, pattern_id}; db_down a 500 "Evolution path query failed"."""
    post(collector, TRACK, created("a"))
    collector.set_fault(mode)
    answer = evolution(collector, "a")
    assert answer.status_code == status
    assert {k: v for k, v in answer.json().items() if k != "metadata"} == body


@pytest.mark.parametrize("mode,params", [
    ("error", {"status": 503}), ("rate_limit", {}), ("flaky", {"every": 1}), ("trickle", {"interval_s": 5.0}),
    ("redirect", {}), ("empty", {}), ("unknown_error", {}), ("idle_pool", {}), ("body_limit", {"max_bytes": 0}),
    ("late", {"delay_s": 5.0}), ("truncate", {"at_bytes": 0}), ("reset", {"after_events": 0}),
])
def test_track_only_faults_leave_evolution_alone(collector, mode, params):
    """Modes that imitate the track routes' failures leave evolution answering normally."""
    post(collector, TRACK, created("a"))
    collector.set_fault(mode, **params)
    answer = evolution(collector, "a")
    assert answer.status_code == 200 and answer.json()["data"]["total_versions"] == 1
    if mode in ("late", "truncate", "reset"):  # and health, which is not a track route either
        assert requests.get(collector.url + HEALTH, timeout=1).json()["status"] == "healthy"


def test_html_and_slow_faults_act_on_the_read_routes(collector):
    """html answers the read routes with its HTML page; slow answers them normally, late."""
    post(collector, TRACK, created("a"))
    collector.set_fault("html")
    for path in ("/lineage/a/evolution", "/lineage/a?query_type=descendants"):
        answer = requests.get(collector.url + API + path, timeout=5)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    collector.set_fault("slow", delay_s=0.05)
    assert evolution(collector, "a").status_code == 200


def hung_get(c, path):
    """Send a GET while the collector hangs, release it, return (status, JSON body)."""
    sock = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    with sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (API + path).encode())
        assert poll_until(lambda: c.state()["hanging"] == 1)
        c.set_fault("none")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def test_hang_holds_the_read_routes_then_evolution_answers(collector):
    """A hung evolution answers normally once released (no timeout on the service); the lineage query 504s."""
    post(collector, TRACK, created("a"))
    collector.set_fault("hang")
    status, body = hung_get(collector, "/lineage/a/evolution")
    assert status == 200 and body["data"]["pattern_id"] == "a"
    collector.set_fault("hang")
    assert hung_get(collector, "/lineage/a?query_type=descendants") == (504, {"detail": "Query operation timed out"})


def test_lineage_query_descendants(collector):
    """query_type=descendants lists the direct children of the newest node, newest first."""
    chain(collector)
    post(collector, TRACK, derived("e", "1.0.0", "b", event_type="pattern_forked", edge_type="derived_from"))
    answer = requests.get(collector.url + API + "/lineage/b?query_type=descendants", timeout=5)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["pattern_id"] == "b" and data["total_descendants"] == 2
    assert data["pattern_node_id"] == evolution(collector, "b").json()["data"]["evolution_nodes"][0]["node_id"]
    assert [(d["descendant_pattern_id"], d["edge_type"]) for d in data["descendants"]] == [
        ("e", "derived_from"), ("d", "merged_from")]
    assert set(data["descendants"][0]) == {"descendant_id", "descendant_pattern_id", "edge_type",
                                           "transformation_type", "created_at"}


def test_lineage_query_ancestry_is_broken_like_the_service(collector):
    """The default query_type (ancestry) is a 500 InvalidParameterValueError for a stored id, a 404 otherwise."""
    post(collector, TRACK, created("a"))
    for path in ("/lineage/a", "/lineage/a?query_type=ancestry"):
        answer = requests.get(collector.url + API + path, timeout=5)
        assert answer.status_code == 500 and "statement_timeout" in answer.json()["error"]
        assert answer.json()["metadata"]["error_type"] == "InvalidParameterValueError"
    missing = requests.get(collector.url + API + "/lineage/ghost", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "Pattern not found: ghost"
    for mode, status in (("degraded", 503), ("db_down", 500)):
        collector.set_fault(mode)
        assert requests.get(collector.url + API + "/lineage/a?query_type=descendants", timeout=5).status_code == status


def test_reads_refill_an_idle_pool():
    """A read queries the database, so like a track request (and unlike health) it refills an idle pool."""
    with Collector(clock=FakeClock()) as c:
        c.set_fault("idle_pool")
        assert pool(c) == (0, 0)
        assert evolution(c, "ghost").status_code == 404
        assert pool(c)[0] > 0


def test_read_routes_survive_a_restart_on_sqlite(tmp_path):
    """Generations, edge ids and times are kept in the SQLite file: a reopened collector answers the same."""
    db = str(tmp_path / "c.db")
    with Collector(db_path=db) as first:
        chain(first)
        before = {pid: evolution(first, pid).json()["data"] for pid in "abcd"}
    with Collector(db_path=db) as second:
        assert {pid: evolution(second, pid).json()["data"] for pid in "abcd"} == before


# -- health --------------------------------------------------------------------------


@pytest.mark.parametrize("mode,status,tracker,pool", [
    ("none", "healthy", "operational", 2),
    ("degraded", "degraded", "database_unavailable", None),
    ("db_down", "healthy", "operational", 0),
])
def test_health(collector, mode, status, tracker, pool):
    """Health is 200; degraded says so, db_down still says healthy but has an empty pool."""
    collector.set_fault(mode)
    response = requests.get(collector.url + HEALTH, timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == status and body["components"]["lineage_tracker"] == tracker
    assert set(body["components"]) == {"lineage_tracker", "usage_analytics", "feedback_orchestrator"}
    assert set(body["performance"]["rate_limiting"]) == {"current_window_requests", "max_requests_per_window",
                                                         "window_seconds"}
    assert {"timestamp", "response_time_ms"} <= set(body)
    assert body["performance"].get("database_pool", {}).get("pool_size") == pool


# -- fault modes ---------------------------------------------------------------------


@pytest.mark.parametrize("params,status,detail", [
    ({}, 500, "Internal Server Error"),
    ({"status": 503}, 503, "Database connection not available"),
    ({"status": 504}, 504, "Tracking operation timed out"),
    ({"status": 502, "detail": "upstream"}, 502, "upstream"),
])
def test_error_fault(collector, params, status, detail):
    """The error fault answers its status with a detail on both track routes, not on health."""
    collector.set_fault("error", **params)
    for path, body in ((TRACK, created()), (BATCH, {"events": [created()]})):
        response = post(collector, path, body)
        assert response.status_code == status and response.json() == {"detail": detail}
    assert requests.get(collector.url + HEALTH, timeout=5).status_code == 200
    assert collector.events() == []


@pytest.mark.parametrize("retry_after", [None, "7", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_rate_limit_fault(collector, retry_after):
    """The rate_limit fault is a 429 that carries Retry-After only when asked to."""
    collector.set_fault("rate_limit", **({} if retry_after is None else {"retry_after": retry_after}))
    response = post(collector, TRACK, created())
    assert response.status_code == 429 and response.json() == {"detail": "Rate limit exceeded"}
    assert response.headers.get("Retry-After") == retry_after


def test_degraded_fault_track_is_503(collector):
    """In degraded mode both track routes answer 503 Database connection not available."""
    collector.set_fault("degraded")
    for path, body in ((TRACK, created()), (BATCH, {"events": [created()]})):
        response = post(collector, path, body)
        assert response.status_code == 503
        assert response.json() == {"detail": "Database connection not available"}


def test_db_down_fault(collector):
    """With the database down one event is a transient 400 and a batch is a 200 with every event failed."""
    collector.set_fault("db_down")
    single = post(collector, TRACK, created())
    assert single.status_code == 400
    assert single.json()["success"] is False
    assert single.json()["error"] == "[Errno 111] Connect call failed"
    assert single.json()["metadata"]["error_type"] == "ConnectionRefusedError"
    batch = post(collector, BATCH, {"events": [created("a"), created("b")], "processing_mode": "sequential"})
    assert batch.status_code == 200 and batch.json()["success"] is False
    assert [f["metadata"]["error_type"] for f in batch.json()["failed_results"]] == ["ConnectionRefusedError"] * 2
    assert collector.events() == []


def test_unknown_error_fault_fails_one_event_with_its_type(collector):
    """unknown_error answers one event with a 400 success:false carrying the given error_type."""
    collector.set_fault("unknown_error")
    response = post(collector, TRACK, created())
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["error"]
    assert body["metadata"]["error_type"] == "WeirdError" and "correlation_id" in body["metadata"]
    assert collector.events() == []


def test_unknown_error_fault_in_a_batch_fails_only_matching_events(collector):
    """In a batch, only events whose pattern_id contains match fail; the others are stored, summary counted."""
    collector.set_fault("unknown_error", error_type="KeyError", match="bad")
    events = [created("ok-1"), created("bad-1"), created("ok-2")]
    response = post(collector, BATCH, {"events": events, "processing_mode": "sequential"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["batch_summary"] == {"total_events": 3, "successful_events": 2, "failed_events": 1,
                                     "handled_duplicates": 0, "processing_mode": "sequential",
                                     "requested_processing_mode": "sequential"}
    (failed,) = body["failed_results"]
    assert (failed["event_index"], failed["pattern_id"], failed["metadata"]) == (1, "bad-1", {"error_type": "KeyError"})
    assert failed["error"]
    assert [r["event_index"] for r in body["successful_results"]] == [0, 2]
    assert [e["pattern_id"] for e in collector.events()] == ["ok-1", "ok-2"]
    assert post(collector, TRACK, created("fine")).status_code == 200


def test_unknown_error_fault_set_over_http(collector):
    """unknown_error takes its parameters over POST /_collector/fault; health stays healthy with a pool."""
    response = requests.post(collector.url + "/_collector/fault", timeout=5,
                             json={"mode": "unknown_error", "error_type": "OSError", "match": "x"})
    assert response.json()["params"] == {"error_type": "OSError", "match": "x"}
    assert post(collector, TRACK, created("x1")).json()["metadata"]["error_type"] == "OSError"
    assert post(collector, TRACK, created("y1")).status_code == 200
    health = requests.get(collector.url + HEALTH, timeout=5).json()
    assert health["status"] == "healthy" and health["performance"]["database_pool"]["pool_size"] > 0


def pool(c):
    """Health's (pool_size, free_size), after checking it still says healthy and operational."""
    body = requests.get(c.url + HEALTH, timeout=5).json()
    assert body["status"] == "healthy" and body["components"]["lineage_tracker"] == "operational"
    return body["performance"]["database_pool"]["pool_size"], body["performance"]["database_pool"]["free_size"]


def test_idle_pool_fault_empties_the_pool_until_a_track_request():
    """idle_pool: the pool is empty when set and idle_s after the last track request; health never refills it."""
    clock = FakeClock()
    with Collector(clock=clock) as c:
        c.set_fault("idle_pool")
        assert pool(c) == (0, 0) and c.state()["pool_size"] == 0
        assert post(c, TRACK, created("a")).status_code == 200
        full = pool(c)
        assert full[0] > 0 and full[1] > 0
        clock.now += 299.9
        assert pool(c) == full
        clock.now += 0.1
        assert pool(c) == (0, 0) and pool(c) == (0, 0)  # asking health does not refill it
        assert post(c, TRACK, {"bad": True}).status_code == 422  # never reached the database
        assert pool(c) == (0, 0)
        assert post(c, BATCH, {"events": [created("b")], "processing_mode": "sequential"}).status_code == 200
        assert pool(c) == full
        assert [e["pattern_id"] for e in c.events()] == ["a", "b"]
        c.set_fault("none")
        clock.now += 10_000
        assert pool(c) == full  # the default mode never idles


def test_idle_pool_fault_empties_again_on_the_real_clock(collector):
    """With a small idle_s on the real clock, a refilled pool empties again by itself."""
    collector.set_fault("idle_pool", idle_s=0.5)
    assert collector.state()["pool_size"] == 0
    assert post(collector, TRACK, created()).status_code == 200
    assert collector.state()["pool_size"] > 0
    assert poll_until(lambda: collector.state()["pool_size"] == 0, timeout_s=5.0)
    assert pool(collector) == (0, 0)


def test_body_limit_fault_refuses_large_bodies_like_nginx(collector):
    """body_limit answers a body over max_bytes with nginx's HTML 413 and stores nothing; at the limit it serves."""
    collector.set_fault("body_limit", max_bytes=1000)
    body = json.dumps(created("big", pattern_data={"blob": "x" * 2000}))
    for path, data in ((TRACK, body), (BATCH, json.dumps({"events": [json.loads(body)]}))):
        response = requests.post(collector.url + path, data=data, timeout=5,
                                 headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Connection"] == "close"
        assert "<title>413 Request Entity Too Large</title>" in response.text
    assert collector.events() == []
    assert collector.state()["rate_limit"]["current_window_requests"] == 0  # refused before the service
    assert collector.state()["requests"] == {"track": {"413": 1}, "batch": {"413": 1}}
    exact = json.dumps(created("small")).encode()
    collector.set_fault("body_limit", max_bytes=len(exact))
    assert requests.post(collector.url + TRACK, data=exact, timeout=5,
                         headers={"Content-Type": "application/json"}).status_code == 200
    collector.set_fault("body_limit", max_bytes=len(exact) - 1)
    assert requests.post(collector.url + TRACK, data=exact, timeout=5,
                         headers={"Content-Type": "application/json"}).status_code == 413
    assert [e["pattern_id"] for e in collector.events()] == ["small"]


def test_body_limit_fault_spares_control_routes(collector):
    """The collector's own routes are not behind the proxy: a large fault request still switches the mode."""
    collector.set_fault("body_limit", max_bytes=10)
    assert collector.state()["params"] == {"max_bytes": 10}
    padded = b'{"mode": "none"' + b" " * 100 + b"}"
    assert requests.post(collector.url + "/_collector/fault", data=padded, timeout=5).status_code == 200
    assert collector.state()["mode"] == "none"


def test_body_limit_default_is_64_kib(collector):
    """body_limit's default max_bytes is 65536: 64 KiB passes, one byte more is refused."""
    collector.set_fault("body_limit")
    overhead = len(json.dumps(created(pattern_data={"blob": ""})))
    fits = json.dumps(created(pattern_data={"blob": "x" * (65536 - overhead)}))
    assert len(fits) == 65536
    assert requests.post(collector.url + TRACK, data=fits, timeout=5,
                         headers={"Content-Type": "application/json"}).status_code == 200
    response = requests.post(collector.url + TRACK, data=fits + " ", timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and len(collector.events()) == 1


def test_hang_fault_times_out_until_released(collector):
    """In hang mode track and health never answer; set_fault("none") restores service."""
    collector.set_fault("hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(collector, TRACK, created(), timeout=(2, 0.2))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(collector.url + HEALTH, timeout=(2, 0.2))
    collector.set_fault("none")
    assert post(collector, TRACK, created()).status_code == 200
    assert len(collector.events()) == 1  # the hung request stored nothing


def test_hung_request_gets_504_when_released(collector):
    """A hung request, once the mode changes, is answered 504 and stores nothing."""
    collector.set_fault("hang")
    sock = socket.create_connection(("127.0.0.1", collector.port), timeout=0.2)
    with sock:
        sock.sendall(post_bytes(TRACK, json.dumps(created()).encode()))
        with pytest.raises(socket.timeout):
            sock.recv(1)
        assert collector.state()["hanging"] == 1
        collector.set_fault("none")
        sock.settimeout(5)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 504
        assert json.loads(response.read()) == {"detail": "Tracking operation timed out"}
    assert collector.events() == []


def test_stop_releases_hung_requests():
    """stop() returns promptly while a request hangs, is idempotent, and closes the socket."""
    collector = Collector().start()
    collector.set_fault("hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(collector, TRACK, created(), timeout=(2, 0.2))
    with pytest.raises(RuntimeError):
        collector.start()
    started = time.monotonic()
    collector.stop()
    collector.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(collector.url + HEALTH, timeout=2)


def test_flaky_fault(collector):
    """The flaky fault fails every n-th track request with a 500 and answers the others."""
    collector.set_fault("flaky", every=3)
    statuses = [post(collector, TRACK, created(f"f{i}")).status_code for i in range(6)]
    assert statuses == [200, 200, 500, 200, 200, 500]
    assert len(collector.events()) == 4


def test_slow_fault(collector):
    """The slow fault delays track and health answers, which are then normal."""
    collector.set_fault("slow", delay_s=0.15)
    started = time.monotonic()
    assert post(collector, TRACK, created()).status_code == 200
    assert requests.get(collector.url + HEALTH, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_trickle_fault(collector):
    """The trickle fault sends headers at once and then the body one byte per interval."""
    collector.set_fault("trickle", interval_s=0.15)
    started = time.monotonic()
    response = post(collector, TRACK, created(), stream=True)
    headers_s = time.monotonic() - started
    with response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) > 50
        assert response.raw.read(2) == b'{"'
        body_s = time.monotonic() - started
    assert headers_s < 0.15 and body_s >= 0.3


def test_redirect_fault(collector):
    """The redirect fault is a 307 to the location given."""
    collector.set_fault("redirect", location="http://127.0.0.1:9/elsewhere")
    response = post(collector, TRACK, created(), allow_redirects=False)
    assert response.status_code == 307
    assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"


def test_html_fault(collector):
    """The html fault answers track and health with a 200 HTML page."""
    collector.set_fault("html")
    for response in (post(collector, TRACK, created()), requests.get(collector.url + HEALTH, timeout=5)):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.text.startswith("<html>")


def test_empty_fault(collector):
    """The empty fault answers 200 with an empty body."""
    collector.set_fault("empty")
    response = post(collector, TRACK, created())
    assert response.status_code == 200 and response.content == b""


# -- stored, then the client is not told (late, truncate, reset) ----------------------


def pids(c):
    return [e["pattern_id"] for e in c.events()]


def test_late_fault_stores_although_a_short_timeout_gives_up(collector):
    """late stores the events at once: a 0.3 s client times out, yet both routes' events are stored."""
    collector.set_fault("late", delay_s=2.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(collector, TRACK, created("a"), timeout=(2, 0.3))
    assert collector.wait_for_events(1, 5)
    # The first answer still waits, holding no lock: the batch is stored meanwhile.
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(collector, BATCH, {"events": [created("b"), derived("c", "1.0.0", "b")]}, timeout=(2, 0.3))
    assert collector.wait_for_events(3, 5) and pids(collector) == ["a", "b", "c"]
    collector.set_fault("none")  # the client resends what it was never told about: a duplicate
    assert post(collector, TRACK, created("a")).json()["data"]["status"] == "already_exists"
    assert pids(collector) == ["a", "b", "c", "a"]


def test_late_fault_gives_a_patient_client_the_normal_answer(collector):
    """late answers a client with a long timeout normally, delay_s after it stored the events."""
    collector.set_fault("late", delay_s=0.3)
    started = time.monotonic()
    single = post(collector, TRACK, created("a"), timeout=10)
    batch = post(collector, BATCH, {"events": [created("b")], "processing_mode": "sequential"}, timeout=10)
    assert time.monotonic() - started >= 0.6
    assert single.status_code == 200 and single.json()["data"]["status"] == "created"
    assert batch.status_code == 200 and batch.json()["batch_summary"]["successful_events"] == 1
    assert collector.state()["requests"] == {"track": {"200": 1}, "batch": {"200": 1}}


def test_late_fault_wait_ends_when_the_collector_stops():
    """stop() ends a late answer's wait at once: the client's connection closes unanswered."""
    collector = Collector().start()
    collector.set_fault("late", delay_s=60.0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, collector, TRACK, created("a"), 30)
        assert collector.wait_for_events(1, 5)
        started = time.monotonic()
        collector.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            pending.result(timeout=5)
        assert time.monotonic() - started < 2


def test_truncate_fault_cuts_the_body_after_storing(collector):
    """truncate stores, then the body stops short of its Content-Length: requests raises ChunkedEncodingError."""
    collector.set_fault("truncate")
    for path, body in ((TRACK, created("a")), (BATCH, {"events": [created("b"), created("c")]})):
        with pytest.raises(requests.exceptions.ChunkedEncodingError, match=r"IncompleteRead\(20 bytes read"):
            post(collector, path, body)
    assert pids(collector) == ["a", "b", "c"]
    assert collector.state()["requests"] == {"track": {"200": 1}, "batch": {"200": 1}}


def test_truncate_fault_sends_a_200_with_the_full_length_then_closes(collector):
    """truncate's 200 announces the whole body, sends at_bytes of it (never all) and closes, unannounced."""
    for at_bytes in (0, 7, 10**6):
        collector.set_fault("truncate", at_bytes=at_bytes)
        with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as sock:
            sock.sendall(post_bytes(TRACK, json.dumps(created(f"p{at_bytes}")).encode()))
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 200 and response.getheader("Connection") is None
            length = int(response.getheader("Content-Length"))
            with pytest.raises(http.client.IncompleteRead) as cut:
                response.read()
            assert len(cut.value.partial) == min(at_bytes, length - 1)
            assert sock.recv(1) == b""  # closed by the collector: nothing more comes
    assert pids(collector) == ["p0", "p7", "p1000000"]


@pytest.mark.parametrize("path,after_events,stored", [
    (TRACK, None, ["a"]), (TRACK, 1, ["a"]), (TRACK, 0, []),
    (BATCH, None, ["a", "b", "c"]), (BATCH, 2, ["a", "b"]), (BATCH, 1, ["a"]), (BATCH, 0, []),
    (BATCH, 5, ["a", "b", "c"]),
])
def test_reset_fault_stores_the_first_events_then_resets(collector, path, after_events, stored):
    """reset stores the first after_events events in order (all: None), then resets: requests raises ConnectionError."""
    collector.set_fault("reset", **({} if after_events is None else {"after_events": after_events}))
    events = [created("a"), derived("b", "1.0.0", "a"), created("c")]
    body = events[0] if path == TRACK else {"events": events, "processing_mode": "sequential"}
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection reset by peer"):
        post(collector, path, body)
    assert pids(collector) == stored
    route = "track" if path == TRACK else "batch"
    assert collector.state()["requests"] == {route: {"reset": 1}}


def test_reset_fault_resets_a_kept_alive_connection_without_any_answer(collector):
    """reset on a kept-alive connection: no status line, not even a FIN, only a reset."""
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    conn.request("POST", TRACK, body=json.dumps(created("a")), headers={"Content-Type": "application/json"})
    assert conn.getresponse().read() and conn.sock is not None
    collector.set_fault("reset")
    conn.request("POST", TRACK, body=json.dumps(created("b")), headers={"Content-Type": "application/json"})
    with pytest.raises(ConnectionResetError):
        conn.getresponse()
    conn.close()
    assert pids(collector) == ["a", "b"]


def test_untold_modes_show_their_params_and_take_them_over_http(collector):
    """late, truncate and reset show their parameters in the state, set directly or over HTTP."""
    for mode, params in (("late", {"delay_s": 2.0}), ("truncate", {"at_bytes": 20}), ("reset", {"after_events": None})):
        collector.set_fault(mode)
        assert collector.state()["params"] == params
    url = collector.url + "/_collector/fault"
    for request, params in (({"mode": "late", "delay_s": 0.25}, {"delay_s": 0.25}),
                            ({"mode": "truncate", "at_bytes": 3}, {"at_bytes": 3}),
                            ({"mode": "reset", "after_events": 2}, {"after_events": 2}),
                            ({"mode": "reset", "after_events": None}, {"after_events": None})):
        answer = requests.post(url, json=request, timeout=5)
        assert answer.status_code == 200 and answer.json()["params"] == params


@pytest.mark.parametrize("mode,params", [
    ("explode", {}), ("error", {"status": "x"}), ("error", {"status": 200}), ("flaky", {"every": 0}),
    ("slow", {"delay": 1}), ("trickle", {"interval_s": -1}), ("unknown_error", {"error_type": ""}),
    ("unknown_error", {"pattern": "x"}), ("idle_pool", {"idle_s": -1}), ("idle_pool", {"idle_s": "soon"}),
    ("body_limit", {"max_bytes": -1}), ("body_limit", {"limit": 10}), ("late", {"delay_s": -1}),
    ("late", {"delay_s": "soon"}), ("truncate", {"at_bytes": -1}), ("truncate", {"at_bytes": "x"}),
    ("reset", {"after_events": -1}), ("reset", {"after_events": "all"}), ("reset", {"events": 1})])
def test_set_fault_rejects_bad_modes_and_params(collector, mode, params):
    """An unknown mode, an unknown parameter or a bad value raises ValueError."""
    with pytest.raises(ValueError):
        collector.set_fault(mode, **params)
    assert collector.state()["mode"] == "none"


# -- rate limit ----------------------------------------------------------------------


def test_rate_limit_is_shared_sliding_window():
    """The budget counts a batch once, limits bad requests too, spares health and slides with time."""
    clock = FakeClock()
    with Collector(rate_limit=3, window_s=10.0, clock=clock) as c:
        assert post(c, TRACK, created("a")).status_code == 200
        assert post(c, BATCH, {"events": [created("b"), created("c")]}).status_code == 200
        assert post(c, TRACK, {"bad": True}).status_code == 422
        limited = post(c, TRACK, created("d"))
        assert limited.status_code == 429 and limited.json() == {"detail": "Rate limit exceeded"}
        assert "Retry-After" not in limited.headers
        health = requests.get(c.url + HEALTH, timeout=5).json()["performance"]["rate_limiting"]
        assert health == {"current_window_requests": 3, "max_requests_per_window": 3, "window_seconds": 10.0}
        clock.now += 10.0
        assert post(c, TRACK, created("d")).status_code == 200


# -- control endpoints ---------------------------------------------------------------


def test_http_control_endpoints(collector):
    """/_collector/fault, /state, /events and /reset drive and report the collector."""
    url = collector.url + "/_collector"
    assert requests.post(url + "/fault", json={"mode": "error", "status": 503}, timeout=5).status_code == 200
    assert post(collector, TRACK, created()).status_code == 503
    assert requests.post(url + "/fault", json={"mode": "none"}, timeout=5).status_code == 200
    post(collector, TRACK, created())
    state = requests.get(url + "/state", timeout=5).json()
    assert state["mode"] == "none" and state["events"] == 1 and state["nodes"] == 1
    assert state["requests"]["track"] == {"503": 1, "200": 1}
    events = requests.get(url + "/events", timeout=5).json()
    assert [e["pattern_id"] for e in events] == ["p1"]
    assert requests.post(url + "/reset", timeout=5).status_code == 200
    assert collector.events() == [] and collector.state()["requests"] == {"control": {"200": 1}}
    assert requests.post(url + "/fault", json={"mode": "explode"}, timeout=5).status_code == 400
    assert requests.post(url + "/fault", data=b"[1]", timeout=5).status_code == 400


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_every_mode_can_be_set_over_http(collector, mode):
    """Every fault mode can be switched on over HTTP and shows in the state."""
    response = requests.post(collector.url + "/_collector/fault", json={"mode": mode}, timeout=5)
    assert response.status_code == 200 and collector.state()["mode"] == mode


# -- persistence, transport details, CLI ---------------------------------------------


def test_sqlite_persistence_across_restart(tmp_path):
    """With db_path a restarted collector remembers patterns and the event log."""
    db = tmp_path / "collector.db"
    with Collector(db_path=str(db)) as first:
        post(first, TRACK, created("a"))
    with Collector(db_path=str(db)) as second:
        assert [n["pattern_id"] for n in second.nodes()] == ["a"] and len(second.events()) == 1
        assert post(second, TRACK, derived("a", "2.0.0", "a")).status_code == 200
        assert post(second, TRACK, created("a")).json()["data"]["status"] == "already_exists"
    with Collector(db_path=str(db)) as third:
        assert len(third.nodes()) == 2 and len(third.events()) == 3
        third.reset()
    with Collector(db_path=str(db)) as fourth:
        assert fourth.nodes() == [] and fourth.events() == []


def test_keep_alive_reuses_the_connection(collector):
    """Answers carry Content-Length and keep the HTTP/1.1 connection open."""
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    socks = []
    for i in range(3):
        conn.request("POST", TRACK, body=json.dumps(created(f"k{i}")), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Length")
        response.read()
        socks.append(conn.sock)
    conn.close()
    assert socks[0] is socks[1] is socks[2]


@pytest.mark.parametrize("length,status", [(b"ten", 400), (b"-1", 400), (b"999999999", 413)])
def test_bad_content_length_is_refused(collector, length, status):
    """A malformed Content-Length is a 400 and a huge one a 413; the connection is then closed."""
    response = raw_request(collector, b"POST " + TRACK.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}")
    assert response.status == status and "detail" in json.loads(response.read())
    assert response.getheader("Connection") == "close"
    assert collector.events() == []


def test_large_body_is_accepted(collector):
    """A body of a few MB is read and stored."""
    response = post(collector, TRACK, created(pattern_data={"blob": "x" * 3_000_000}))
    assert response.status_code == 200
    assert len(collector.events()[0]["pattern_data"]["blob"]) == 3_000_000


def test_concurrent_requests(collector):
    """Concurrent requests are all stored; racing identical creations yield one created node."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        distinct = list(pool.map(lambda i: post(collector, TRACK, created(f"c{i}")).status_code, range(24)))
        same = list(pool.map(lambda _: post(collector, TRACK, created("same")).json()["data"]["status"], range(8)))
    assert distinct == [200] * 24
    assert sorted(same) == ["already_exists"] * 7 + ["created"]
    assert len(collector.nodes()) == 25 and len(collector.events()) == 32


def test_server_does_not_write_to_stderr(collector, capfd):
    """Requests, including failed and abandoned ones, leave stderr silent."""
    post(collector, TRACK, created())
    requests.get(collector.url + "/nothing", timeout=5)
    raw_request(collector, b"POST " + TRACK.encode() + b" HTTP/1.1\r\nContent-Length: x\r\n\r\n").read()
    assert capfd.readouterr().err == ""


def test_main_serves_until_sigterm():
    """python -m pattern_track.collector prints its URL, serves, and exits 0 on SIGTERM."""
    proc = subprocess.Popen([sys.executable, "-m", "pattern_track.collector", "--port", "0", "--fault", "degraded"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("pattern_track collector listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        assert requests.get(url + HEALTH, timeout=5).json()["status"] == "degraded"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_main_reports_a_busy_port(collector, capsys):
    """main() returns 1 with a message on stderr when it cannot listen."""
    assert main(["--port", str(collector.port)]) == 1
    assert "cannot start" in capsys.readouterr().err


def test_serve_help_shows_command_port_modes_and_routes(capsys):
    """main(["--help"]) names pattern-track serve, the default port, each fault mode and each control route."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pattern-track serve ")
    assert re.search(r"--port PORT [^-]*default: 8053", " ".join(out.split()))
    lines = out.splitlines()
    for mode in FAULT_MODES:
        assert any(line.startswith(f"  {mode} ") for line in lines), mode
    for route in ("GET /_collector/events", "GET /_collector/state", "POST /_collector/fault",
                  "POST /_collector/reset"):
        assert any(line.startswith(f"  {route} ") for line in lines), route


@pytest.mark.parametrize("command,usage", [
    (["-m", "pattern_track", "serve", "--help"], "usage: pattern-track serve "),
    (["-m", "pattern_track.collector", "--help"], "usage: python -m pattern_track.collector "),
], ids=["cli", "module"])
def test_help_names_the_command_it_was_run_as(command, usage):
    """--help through pattern-track says pattern-track serve; through python -m, the module."""
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith(usage), done.stderr


def test_every_fault_mode_is_in_the_package_docstring():
    """The package docstring has a bullet for every fault mode."""
    import pattern_track.collector as package

    for mode in FAULT_MODES:
        assert re.search(rf"^- ``{mode}[`(]", package.__doc__, re.M), mode


def test_rate_limit_help_says_what_is_enforced_and_what_health_reports(capsys):
    """serve --help: no limit is enforced by default, while health reports the real
    service's 1000; with --rate-limit N both are N."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--rate-limit N answer 429 past N requests per --rate-window to the track routes and the lineage "
            "query (not health or evolution), shared by all "
            "clients; health reports N as max_requests_per_window (default: none enforced, while health "
            "reports the real service's 1000)") in text
    assert "--rate-window SECONDS the sliding window of --rate-limit, in seconds (default: 60, the service's)" in text

    def budget(c):
        return requests.get(c.url + API + "/health", timeout=5).json()["performance"]["rate_limiting"]

    with Collector() as c:
        assert budget(c)["max_requests_per_window"] == 1000 and budget(c)["window_seconds"] == 60.0
        assert all(post(c, TRACK, created(f"p{i}")).status_code == 200 for i in range(3))
        assert c.state()["rate_limit"]["limit"] is None
    with Collector(rate_limit=2) as c:
        assert budget(c)["max_requests_per_window"] == 2
        assert [post(c, TRACK, created(f"p{i}")).status_code for i in range(3)] == [200, 200, 429]
