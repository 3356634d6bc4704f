"""Security and privacy: secrets and code never reach the logs; TLS verified by default."""

import logging

from pattern_track import Tracker
from pattern_track.config import Config
from pattern_track.delivery.transport import Transport

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
    tracker.track("pattern_modified", pattern_id="x", parent_pattern_ids=["missing"],
                  pattern_data={"code": SECRET_CODE})
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


def test_an_unsafe_store_is_refused_by_the_spool_too(tmp_path):
    """The outbox refuses a store reached through a symlink; the spool, its fallback, must
    refuse it as well (it holds users' code): nothing is written through the symlink."""
    import os


    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, cache / "services")
    tracker = Tracker("http://127.0.0.1:9", cache_dir=str(cache), connect_timeout_s=0.2, linger_s=0.0,
                      handoff=False)
    try:
        for i in range(5):
            assert tracker.track("pattern_created", pattern_id=f"s{i}", pattern_data={"code": "secret"})
        tracker.flush(5)
        stats = tracker.stats()
        assert stats["outcomes"]["outboxed"] == 0
        assert stats["conditions"].get("outbox_unavailable")
    finally:
        tracker.close(timeout=1)
    written = [os.path.join(d, f) for d, _, files in os.walk(elsewhere) for f in files]
    assert written == []


def test_a_symlinked_default_cache_falls_back_to_the_private_temp_dir(tmp_path):
    """HOME's .cache/pattern_track is a symlink: the default is not used (it would be
    refused), the per-uid temp directory is."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", home / ".cache" / "pattern_track")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PATTERN_"))}
    code = "from pattern_track.config import Config; print(Config().resolved_cache_dir)"
    done = subprocess.run([sys.executable, "-c", code], env=dict(env, HOME=str(home)), capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip().endswith(f"pattern_track-{os.getuid()}"), done
