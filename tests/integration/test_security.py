"""Security and privacy: secrets and code never reach the logs; TLS verified by default."""

import logging

from pattern_track import Tracker
from pattern_track.config import Config
from pattern_track.transport import Transport

SECRET_CODE = "def leak_me(): return 'hunter2-payload'"
API_KEY = "sk-very-secret-key"


def test_logs_carry_ids_and_reasons_never_code_or_keys(collector, make_tracker, caplog):
    """Through failures, dead letters and recovery, no payload or API key is logged."""
    caplog.set_level(logging.DEBUG, logger="pattern_track")
    tracker = make_tracker(collector.url, api_key=API_KEY, max_attempts=1, health_check_interval_s=0.1)
    collector.set_fault("error", status=500)
    tracker.track_pattern_creation(SECRET_CODE, {"language": "python"})
    tracker.flush(5)
    collector.set_fault("none")
    tracker.track("pattern_modified", pattern_id="x", parent_pattern_ids=["missing"], pattern_data={"code": SECRET_CODE})
    tracker.track("pattern_created", pattern_id="y", pattern_data={"code": SECRET_CODE, "bad": float("nan")})
    tracker.sync_offline_events()
    tracker.flush(5)
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "hunter2" not in text and API_KEY not in text
    assert "dead-lettered" in text  # the outcome is logged, by id and reason


def test_api_key_is_sent_as_a_bearer_token(collector, make_tracker):
    """PATTERN_TRACK_API_KEY / api_key goes in Authorization; the collector stores the event."""
    tracker = make_tracker(collector.url, api_key=API_KEY)
    assert tracker.track("pattern_created", pattern_id="k", pattern_data={"code": "x"})
    assert tracker.flush(5) and collector.wait_for_events(1, timeout=5)
    transport = Transport(Config(base_url=collector.url, api_key=API_KEY))
    assert transport._channel().session.headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(Config(api_key=API_KEY))
    transport.close()


def test_tls_is_verified_and_the_environment_not_trusted_by_default():
    """verify=True; proxies and .netrc are not read unless trust_env=True."""
    transport = Transport(Config(base_url="https://svc.test"))
    session = transport._channel().session
    assert session.verify is True and session.trust_env is False
    transport.close()


def test_event_size_cap_is_counted(make_tracker):
    """Events over max_event_bytes are refused and counted as too_large."""
    tracker = make_tracker("http://127.0.0.1:9", max_event_bytes=1000)
    assert tracker.track("pattern_created", pattern_id="big", pattern_data={"code": "x" * 2000}) is None
    assert tracker.stats()["dropped"] == {"too_large": 1}
