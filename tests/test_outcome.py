"""Classification of every answer in wire-contract.md, in one table."""

import json

import pytest

from pattern_track.delivery.outcome import (
    OK,
    PERMANENT,
    RETRY_AFTER_MAX_S,
    SUSPECT,
    TRANSIENT,
    classify,
    classify_batch,
    classify_error,
    health_verdict,
    parse_retry_after,
)


def body(doc):
    return json.dumps(doc).encode()


def err400(error_type, error="boom"):
    return body({"success": False, "error": error, "metadata": {"error_type": error_type}})


@pytest.mark.parametrize("status,payload,kind", [
    (200, body({"success": True, "data": {}}), OK),
    (200, body({"success": True, "data": {"status": "already_exists"}}), OK),
    (400, body({"detail": "Invalid edge_type"}), PERMANENT),
    (400, err400("validation_error", "Parent pattern abc not found"), SUSPECT),
    (400, err400("validation_error", "something else invalid"), PERMANENT),
    (400, err400("CheckViolationError"), PERMANENT),
    (400, err400("StringDataRightTruncationError"), PERMANENT),
    (400, err400("IndexError"), PERMANENT),
    (400, err400("ConnectionRefusedError"), TRANSIENT),
    (400, err400("foreign_key_violation"), TRANSIENT),
    (400, err400("SomethingNew"), SUSPECT),
    (422, body({"detail": [{"type": "missing"}]}), PERMANENT),
    (429, body({"detail": "Rate limit exceeded"}), TRANSIENT),
    (500, body({"detail": "x"}), TRANSIENT),
    (503, body({"detail": "Database connection not available"}), TRANSIENT),
    (504, body({"detail": "Tracking operation timed out"}), TRANSIENT),
    (404, body({"detail": "Not Found"}), TRANSIENT),
    (307, b"", TRANSIENT),
    (200, b"<html>proxy</html>", SUSPECT),
    (200, b"", TRANSIENT),  # no body at all: in doubt, asked about before a resend
    (200, b'{"success": true, "da', OK),  # cut short: the service stored it, by its own account
    (400, b"<html>", SUSPECT),
])
def test_single_answers(status, payload, kind):
    """Each answer the service gives maps to the action the contract prescribes."""
    assert classify(status, {}, payload).kind == kind


def test_rate_limit_without_retry_after_leaves_backoff_to_us():
    """The service sends no Retry-After on 429."""
    assert classify(429, {}, b"{}").retry_after_s is None
    assert classify(429, {"Retry-After": "7"}, b"{}").retry_after_s == 7.0


def test_retry_after_accepts_seconds_and_http_dates_and_clamps():
    """Both header forms are honoured; absurd values are clamped to RETRY_AFTER_MAX_S."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2037 00:00:10 GMT", now=2114380800.0) == 10.0
    assert parse_retry_after("99999") == RETRY_AFTER_MAX_S == 600.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None


def test_batch_answer_is_classified_event_by_event():
    """A 200 batch answer with failures is read per event, database outage included."""
    answer = body({
        "success": False, "batch_summary": {"total_events": 3},
        "successful_results": [{"event_index": 0, "data": {}}],
        "failed_results": [
            {"event_index": 1, "error": "Parent x not found", "metadata": {"error_type": "validation_error"}},
            {"event_index": 2, "error": "down", "metadata": {"error_type": "ConnectionRefusedError"}},
        ],
    })
    verdict = classify_batch(200, {}, answer, 3)
    assert [o.kind for o in verdict.per_event] == [OK, SUSPECT, TRANSIENT]


def test_batch_refused_for_one_bad_event_is_split():
    """400 detail / 422 / missing route: resend one by one so only the bad one dies."""
    assert classify_batch(400, {}, body({"detail": "Invalid"}), 2).split
    assert classify_batch(422, {}, body({"detail": []}), 2).split
    assert classify_batch(405, {}, body({"detail": "Method Not Allowed"}), 2).split
    assert classify_batch(503, {}, body({"detail": "x"}), 2).whole.kind == TRANSIENT


def test_event_missing_from_a_batch_answer_is_retried():
    """An answer that forgets an event does not lose it."""
    answer = body({"batch_summary": {}, "successful_results": [], "failed_results": []})
    assert classify_batch(200, {}, answer, 1).per_event[0].kind == SUSPECT


def health(status="healthy", tracker="operational", pool=None):
    perf = {"rate_limiting": {}}
    if pool is not None:
        perf["database_pool"] = {"pool_size": pool}
    return body({"status": status, "components": {"lineage_tracker": tracker}, "performance": perf})


@pytest.mark.parametrize("status,payload,healthy", [
    (200, health(), True),
    (200, health(pool=5), True),
    (200, health(pool=0), True),  # idle pool: only a track request refills it
    (200, health(status="degraded", tracker="database_unavailable"), False),
    (200, health(tracker="database_unavailable"), False),
    (200, b"<html>", False),
    (503, health(), False),
])
def test_health_verdict(status, payload, healthy):
    """Healthy means what the contract says, not merely HTTP 200."""
    assert health_verdict(status, payload)[0] is healthy


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Tokyo"])
def test_http_dates_are_gmt_whatever_tz_says(monkeypatch, zone):
    """The asctime form has no zone and means GMT: 120 s stays 120 s in every TZ."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        now = 2_000_000_000.0
        asctime = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now + 120))
        rfc = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 120))
        assert parse_retry_after(asctime, now=now) == 120.0
        assert parse_retry_after(rfc, now=now) == 120.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_only_the_services_own_failures_count_against_it():
    """Answers about one event and errors of our own never feed the shared breaker."""
    from pattern_track.delivery.transport import NoAnswer

    def single(error_type, error="x"):
        return classify(400, {}, body({"success": False, "error": error, "metadata": {"error_type": error_type}}))

    assert not single("validation_error", "Pattern ghost not found").counts_against_service
    assert not single("WeirdError").counts_against_service
    assert single("UntranslatableCharacterError").kind == PERMANENT
    assert single("CharacterNotInRepertoireError").kind == PERMANENT
    assert single("ConnectionRefusedError").counts_against_service
    assert classify(500, {}, b"{}").counts_against_service
    assert classify(200, {}, b"<html>").counts_against_service  # an unreadable answer
    assert not classify_error(RuntimeError("can't create new thread at interpreter shutdown")).counts_against_service
    assert not classify_error(NoAnswer("cut", "cut", service_fault=False)).counts_against_service
    for reason in ("refused", "timed_out", "tls", "dns"):
        outcome = classify_error(NoAnswer("no answer", reason))
        assert outcome.counts_against_service and outcome.reason == reason


def test_answers_that_leave_events_in_doubt():
    """A request that may have reached the service is in doubt; one that cannot have is not;
    a 2xx the service sent is never blamed on it, and a batch's unreadable 2xx is in doubt."""
    from pattern_track.delivery.outcome import classify_batch
    from pattern_track.delivery.transport import NoAnswer

    for reason in ("timed_out", "reset", "connection_error"):
        assert classify_error(NoAnswer("x", reason)).in_doubt
    for reason in ("refused", "dns", "tls"):
        assert not classify_error(NoAnswer("x", reason)).in_doubt
    assert not classify_error(NoAnswer("before the request", "cut", service_fault=False, in_doubt=False)).in_doubt
    assert classify_error(NoAnswer("cut in flight", "cut", service_fault=False)).in_doubt
    single = classify(200, {"Content-Type": "application/json"}, b"", complete=False)
    assert single.kind == OK and single.reason == "stored_unreadable_answer" and not single.counts_against_service
    empty = classify(200, {}, b"")
    assert empty.in_doubt and not empty.counts_against_service
    for payload, complete in ((b"", False), (b'{"success": false, "batch_su', True), (b"", True)):
        whole = classify_batch(200, {"Content-Type": "application/json"}, payload, 3, complete=complete).whole
        assert whole is not None and whole.in_doubt and whole.kind == TRANSIENT and not whole.counts_against_service
    html = classify_batch(200, {"Content-Type": "text/html"}, b"<html>sign in</html>", 3).whole
    assert html is not None and not html.in_doubt and html.counts_against_service  # a proxy, not the service


def test_one_line_reduces_an_html_refusal_to_status_phrase_and_text():
    """A proxy's HTML 413, as a dead letter keeps it (its first 120 bytes), reads as one line:
    status, reason phrase, and the page's first text line unless it only restates the status."""
    import http

    from pattern_track.collector.faults import _NGINX_413
    from pattern_track.delivery.answers import LINE_CHARS, detail_text, one_line

    phrase = http.HTTPStatus(413).phrase
    said = one_line("too_large_for_service", detail_text(_NGINX_413))
    assert said == f"too_large_for_service: HTTP 413 {phrase}" and "\n" not in said
    page = "<html><body><h1>Please sign in &amp; retry</h1>\n<p>then again</p></body></html>"
    assert one_line("http_403", page) == f"http_403: HTTP 403 {http.HTTPStatus(403).phrase}: Please sign in & retry"
    assert one_line("parent_not_found", "Parent pattern p not found") == "parent_not_found: Parent pattern p not found"
    assert one_line("rejected", "first\nsecond") == "rejected: first"
    long = one_line("http_599", "x" * 500)
    assert long.startswith("http_599: HTTP 599: ") and long.endswith("...")
    assert len(long) == len("http_599: HTTP 599: ") + LINE_CHARS
    assert one_line(None, None) == "unknown"
