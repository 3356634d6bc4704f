"""Configuration: strict in code, forgiving in the environment, every documented variable read."""

import logging

import pytest

from pattern_track import ConfigError, Tracker
from pattern_track.config import Config, default_cache_dir


def test_every_documented_environment_variable_is_read():
    """The original library documented these and read one; all are honoured."""
    config = Config.from_env({
        "INTELLIGENCE_SERVICE_URL": "http://svc:9000",
        "PATTERN_TRACKING_ENABLED": "false",
        "PATTERN_CACHE_DIR": "/tmp/x",
        "PATTERN_CACHE_MAX_AGE_DAYS": "3",
        "PATTERN_CACHE_MAX_SIZE_MB": "12.5",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "9",
        "CIRCUIT_BREAKER_TIMEOUT": "15",
        "HEALTH_CHECK_INTERVAL": "7",
        "HEALTH_CHECK_TIMEOUT": "0.25",
        "PATTERN_TRACK_BATCH_SIZE": "50",
        "PATTERN_TRACK_API_KEY": "secret",
    })
    assert (config.base_url, config.enabled, config.cache_dir) == ("http://svc:9000", False, "/tmp/x")
    assert (config.cache_max_age_days, config.cache_max_size_mb) == (3.0, 12.5)
    assert (config.breaker_failure_threshold, config.breaker_reset_timeout_s) == (9, 15.0)
    assert (config.health_check_interval_s, config.health_check_timeout_s) == (7.0, 0.25)
    assert (config.batch_size, config.api_key) == (50, "secret")


def test_new_prefix_wins_over_the_legacy_name():
    """PATTERN_TRACK_* is the one consistent prefix; it overrides the historic alias."""
    config = Config.from_env({"PATTERN_TRACK_BASE_URL": "http://a:1", "INTELLIGENCE_SERVICE_URL": "http://b:2"})
    assert config.base_url == "http://a:1"


def test_bad_environment_value_warns_and_falls_back(caplog):
    """A typo in someone's shell must not crash a hook."""
    with caplog.at_level(logging.WARNING, logger="pattern_track"):
        config = Config.from_env({"HEALTH_CHECK_INTERVAL": "soon", "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "-1",
                                  "PATTERN_TRACKING_ENABLED": "maybe"})
    assert config.health_check_interval_s == Config().health_check_interval_s
    assert config.breaker_failure_threshold == Config().breaker_failure_threshold
    assert config.enabled is True
    assert "HEALTH_CHECK_INTERVAL" in caplog.text and "PATTERN_TRACKING_ENABLED" in caplog.text


@pytest.mark.parametrize("options,field", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "10"}, "batch_size"),
    ({"read_timeout_s": -1}, "read_timeout_s"),
    ({"enabled": "yes"}, "enabled"),
    ({"before_send": 3}, "before_send"),
    ({"lease_ttl_s": 1.0, "request_deadline_s": 5.0}, "lease_ttl_s"),
    ({"bacth_size": 5}, "bacth_size"),
])
def test_bad_keyword_raises_a_clear_error_naming_the_field(options, field, tmp_path):
    """A configuration mistake in code fails at construction, naming the field."""
    with pytest.raises(ConfigError, match=field):
        Tracker("http://localhost:8053", cache_dir=str(tmp_path), **options)


def test_bad_base_url_is_refused():
    """A URL without a scheme is a clear error, not a silent failure later."""
    with pytest.raises(ConfigError, match="base_url"):
        Tracker("localhost:8053")


def test_default_cache_dir_follows_xdg():
    """Under $XDG_CACHE_HOME when set, else ~/.cache."""
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/pattern_track"
    assert default_cache_dir({}).endswith("/.cache/pattern_track")


def test_from_env_builds_a_tracker_with_overrides(tmp_path):
    """Tracker.from_env reads the environment; explicit options win."""
    tracker = Tracker.from_env({"INTELLIGENCE_SERVICE_URL": "http://svc:1", "PATTERN_CACHE_DIR": str(tmp_path)},
                               batch_size=7)
    config = tracker.config
    assert (config.base_url, config.cache_dir, config.batch_size) == ("http://svc:1", str(tmp_path), 7)
    tracker.close()


def test_a_bad_environment_value_falls_back_for_that_variable_only():
    """A bad URL, an empty value or a conflicting deadline drop only themselves; the kill switch wins."""
    for bad in ("ftp://example", "", " "):
        config = Config.from_env({"INTELLIGENCE_SERVICE_URL": bad, "PATTERN_TRACKING_ENABLED": "false",
                                  "PATTERN_CACHE_DIR": "/tmp/pt-x", "PATTERN_TRACK_API_KEY": "k"})
        assert config.enabled is False and config.cache_dir == "/tmp/pt-x" and config.api_key == "k"
        assert config.base_url == "http://localhost:8053"
        assert any("INTELLIGENCE_SERVICE_URL" in w for w in config.warnings)
    config = Config.from_env({"PATTERN_TRACK_REQUEST_DEADLINE_S": "70", "PATTERN_TRACKING_ENABLED": "0",
                              "PATTERN_TRACK_BATCH_SIZE": "7"})
    assert config.request_deadline_s == Config().request_deadline_s
    assert config.enabled is False and config.batch_size == 7
    assert any("PATTERN_TRACK_REQUEST_DEADLINE_S" in w for w in config.warnings)


def test_host_and_port_without_a_scheme_is_read_as_http():
    """INTELLIGENCE_SERVICE_URL=127.0.0.1:18053 means http://127.0.0.1:18053, with a warning."""
    config = Config.from_env({"INTELLIGENCE_SERVICE_URL": "127.0.0.1:18053", "PATTERN_CACHE_DIR": "/tmp/pt-y"})
    assert config.base_url == "http://127.0.0.1:18053" and config.cache_dir == "/tmp/pt-y"
    assert len(config.warnings) == 1 and "no scheme" in config.warnings[0]


def test_a_misspelt_option_suggests_the_right_name_in_both_constructors():
    """Tracker.from_env() and Tracker() raise the same ConfigError for a typo, naming the fix."""
    from pattern_track import Tracker

    for make in (lambda: Tracker.from_env(conect_timeout_s=1), lambda: Tracker(conect_timeout_s=1)):
        with pytest.raises(ConfigError, match="did you mean 'connect_timeout_s'"):
            make()


def test_the_default_cache_is_always_absolute():
    """XDG rules, then HOME; with neither usable, a per-uid temp dir, never ./~/.cache."""
    import os

    assert default_cache_dir({"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}) == "/x/cache/pattern_track"
    assert default_cache_dir({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == "/h/.cache/pattern_track"
    nowhere = default_cache_dir({"HOME": ""})
    assert os.path.isabs(nowhere)
    if os.path.expanduser("~") in ("~", "/"):
        assert nowhere.endswith(f"pattern_track-{os.getuid()}")


def test_the_constructor_documents_every_option_and_hides_the_test_clock():
    """help(Tracker) names every option with its default; the clock seam lives in testing."""
    import inspect

    from pattern_track.config import fields
    from pattern_track.testing import FakeClock, tracker_with_clock

    doc = Tracker.__init__.__doc__
    assert [name for name in fields() if f"``{name}``" not in doc] == []
    assert "clock" not in inspect.signature(Tracker).parameters
    clock = FakeClock()
    assert tracker_with_clock("http://127.0.0.1:9", clock=clock, enabled=False)._clock is clock


def test_an_unusable_home_falls_back_to_a_private_temp_dir(tmp_path):
    """A HOME that cannot hold a cache (here a file; for nobody, /nonexistent) must not
    leave events in memory only: the tracker's cache is the per-uid temp directory."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home-is-a-file"
    home.write_text("")
    code = "from pattern_track.config import Config; print(Config().resolved_cache_dir)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PATTERN_"))}
    done = subprocess.run([sys.executable, "-c", code], env=dict(env, HOME=str(home)), capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip().endswith(f"pattern_track-{os.getuid()}"), done
    assert done.stderr == ""
