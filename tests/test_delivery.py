"""Exact HTTP sequences of delivery, with ``responses`` (requests is mocked, threads included)."""

import json

import pytest
import responses

from pattern_track import event
from pattern_track.config import Config
from pattern_track.delivery.batches import Delivery, event_id_from
from pattern_track.delivery.outcome import OK, PERMANENT, TRANSIENT
from pattern_track.delivery.transport import BATCH_PATH, HEALTH_PATH, TRACK_PATH, Transport

BASE = "http://svc.test"


class CountingBreaker:
    def __init__(self):
        self.records = []

    def record(self, ok):
        self.records.append(ok)


def events(n, **fields):
    out = []
    for i in range(n):
        ev = event.build("pattern_created", dict(pattern_id=f"p{i}", pattern_data={"code": str(i)}, **fields),
                         triggered_by="test")
        out.append(event.encode(ev))
    return out


@pytest.fixture
def delivery():
    breaker = CountingBreaker()
    transport = Transport(Config(base_url=BASE, api_key="s3cret"))
    yield Delivery(transport, breaker, track_path=TRACK_PATH, batch_path=BATCH_PATH), breaker
    transport.close()


def batch_ok(n):
    return {"success": True, "batch_summary": {"total_events": n},
            "successful_results": [{"event_index": i, "data": {}} for i in range(n)], "failed_results": []}


@responses.activate
def test_a_batch_goes_in_one_sequential_request(delivery):
    """Several events: one POST to /lineage/track/batch in sequential mode, events verbatim."""
    send, breaker = delivery
    responses.post(BASE + BATCH_PATH, json=batch_ok(3))
    evs = events(3)
    assert [o.kind for o in send.send(evs)] == [OK] * 3
    (call,) = responses.calls
    body = json.loads(call.request.body)
    assert body["processing_mode"] == "sequential"
    assert body["events"] == [json.loads(e) for e in evs]
    assert call.request.headers["Authorization"] == "Bearer s3cret"
    assert call.request.headers["Content-Type"] == "application/json"
    assert breaker.records == [True]


@responses.activate
def test_one_bad_event_rejecting_a_batch_is_resent_alone(delivery):
    """Batch 400 detail: resend one by one; only the bad event is permanent."""
    send, breaker = delivery
    responses.post(BASE + BATCH_PATH, status=400, json={"detail": "Invalid pattern_data"})
    responses.post(BASE + TRACK_PATH, json={"success": True, "data": {}})
    responses.post(BASE + TRACK_PATH, status=400, json={"detail": "pattern_data must not be empty"})
    responses.post(BASE + TRACK_PATH, json={"success": True, "data": {}})
    outcomes = send.send(events(3))
    assert [o.kind for o in outcomes] == [OK, PERMANENT, OK]
    assert outcomes[1].detail == "pattern_data must not be empty"
    assert [c.request.url for c in responses.calls] == [BASE + BATCH_PATH] + [BASE + TRACK_PATH] * 3
    assert False not in breaker.records  # a bad event says nothing bad about the service


@responses.activate
def test_single_requests_carry_the_event_id_header(delivery):
    """X-Event-Id matches the id inside pattern_data, for downstream deduplication."""
    send, _ = delivery
    responses.post(BASE + TRACK_PATH, json={"success": True, "data": {}})
    (ev,) = events(1)
    send.send([ev])
    header = responses.calls[0].request.headers["X-Event-Id"]
    assert header == json.loads(ev)["pattern_data"]["event_id"] == event_id_from(ev)


@responses.activate
def test_missing_batch_route_is_remembered(delivery):
    """A 405 on the batch route: events go one by one, now and later."""
    send, _ = delivery
    responses.post(BASE + BATCH_PATH, status=405, json={"detail": "Method Not Allowed"})
    responses.post(BASE + TRACK_PATH, json={"success": True, "data": {}})
    send.send(events(2))
    send.send(events(2))
    urls = [c.request.url for c in responses.calls]
    assert urls.count(BASE + BATCH_PATH) == 1 and urls.count(BASE + TRACK_PATH) == 4


@responses.activate
def test_database_down_batch_is_transient_and_counts_against_the_service(delivery):
    """200 with every event failing on a connection error: keep them, tell the breaker."""
    send, breaker = delivery
    responses.post(BASE + BATCH_PATH, json={
        "success": False, "batch_summary": {"total_events": 2}, "successful_results": [],
        "failed_results": [{"event_index": i, "error": "refused", "metadata": {"error_type": "ConnectionRefusedError"}}
                           for i in range(2)]})
    assert [o.kind for o in send.send(events(2))] == [TRANSIENT, TRANSIENT]
    assert breaker.records == [False]


@responses.activate
def test_first_transient_failure_stops_a_one_by_one_send(delivery):
    """No hammering: after a 503 the remaining events are not sent this time."""
    send, breaker = delivery
    send.batch_supported = False
    responses.post(BASE + TRACK_PATH, status=503, json={"detail": "Database connection not available"})
    outcomes = send.send(events(3))
    assert [o.kind for o in outcomes] == [TRANSIENT] * 3
    assert len(responses.calls) == 1 and breaker.records == [False]


@responses.activate
def test_redirects_are_not_followed(delivery):
    """A redirect is a misconfiguration: events are kept, nothing is re-posted elsewhere."""
    send, _ = delivery
    responses.post(BASE + TRACK_PATH, status=307, headers={"Location": "http://evil.test/x"})
    responses.post("http://evil.test/x", json={"success": True})
    send.batch_supported = False
    assert send.send(events(1))[0].kind == TRANSIENT
    assert len(responses.calls) == 1


@responses.activate
def test_connection_error_is_transient(delivery):
    """No answer at all is transient and counts against the service."""
    send, breaker = delivery
    responses.post(BASE + BATCH_PATH, body=ConnectionError("refused"))
    assert {o.kind for o in send.send(events(2))} == {TRANSIENT}
    assert breaker.records == [False]


@responses.activate
def test_health_path():
    """Health is a GET on the lineage router's own health route."""
    transport = Transport(Config(base_url=BASE))
    responses.get(BASE + HEALTH_PATH, json={"status": "healthy"})
    assert transport.get(HEALTH_PATH, 1.0).status == 200
    transport.close()


@responses.activate
def test_a_413_halves_the_batch_and_a_lone_oversized_event_is_dead_lettered():
    """A proxy's body limit: batches halve until they pass; an event alone over it is dead-lettered alone."""
    breaker = CountingBreaker()
    transport = Transport(Config(base_url=BASE))
    send = Delivery(transport, breaker, track_path=TRACK_PATH, batch_path=BATCH_PATH)
    limit = 3000

    def batch(request):
        if len(request.body) > limit:
            return 413, {}, "<html><head><title>413 Request Entity Too Large</title></head></html>"
        n = len(json.loads(request.body)["events"])
        return 200, {}, json.dumps(batch_ok(n))

    def single(request):
        if len(request.body) > limit:
            return 413, {}, "<html>413</html>"
        return 200, {}, json.dumps({"success": True, "data": {}})

    responses.add_callback(responses.POST, BASE + BATCH_PATH, callback=batch)
    responses.add_callback(responses.POST, BASE + TRACK_PATH, callback=single)
    evs = events(8, reason="x" * 500)
    evs.insert(3, events(1, reason="y" * 5000)[0])
    outcomes = send.send(evs)
    assert [o.kind for o in outcomes] == [OK] * 3 + [PERMANENT] + [OK] * 5
    assert outcomes[3].reason == "too_large_for_service"
    assert False not in breaker.records  # a size refusal says nothing about the service's health
    transport.close()


@responses.activate
def test_batches_are_bounded_by_bytes_as_well_as_count():
    """batch_max_bytes splits a batch before it is sent; every body stays under it."""
    transport = Transport(Config(base_url=BASE))
    send = Delivery(transport, CountingBreaker(), track_path=TRACK_PATH, batch_path=BATCH_PATH, batch_max_bytes=2000)
    responses.add_callback(responses.POST, BASE + BATCH_PATH, callback=lambda r: (
        200, {}, json.dumps(batch_ok(len(json.loads(r.body)["events"])))))
    responses.post(BASE + TRACK_PATH, json={"success": True, "data": {}})  # a part of one event
    assert all(o.ok for o in send.send(events(10, reason="z" * 400)))
    assert len(responses.calls) > 1 and all(len(c.request.body) <= 2000 for c in responses.calls)
    transport.close()


@responses.activate
def test_an_answer_about_one_event_never_counts_against_the_service(delivery):
    """'Pattern not found' and an unknown error_type on one event leave the breaker alone."""
    send, breaker = delivery
    for error_type, error in (("validation_error", "Pattern ghost not found"), ("WeirdError", "odd")):
        responses.post(BASE + TRACK_PATH, status=400,
                       json={"success": False, "error": error, "metadata": {"error_type": error_type}})
        send.send(events(1))
        responses.reset()
    assert False not in breaker.records


@responses.activate
def test_retry_after_is_reported_for_every_process_to_honour():
    """A 429 with Retry-After hands the wait to on_retry_after (core shares it as 'not before')."""
    waits = []
    transport = Transport(Config(base_url=BASE))
    send = Delivery(transport, CountingBreaker(), track_path=TRACK_PATH, batch_path=BATCH_PATH,
                    on_retry_after=waits.append)
    responses.post(BASE + BATCH_PATH, status=429, json={"detail": "Rate limit exceeded"}, headers={"Retry-After": "3"})
    send.send(events(2))
    assert waits == [3.0]
    transport.close()
