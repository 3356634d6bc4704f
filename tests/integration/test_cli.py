"""The pattern-track command line, run as a user runs it."""

import datetime
import json
import os
import stat
import subprocess
import time
from unittest import mock

import pytest

from pattern_track.collector import Collector
from pattern_track.store.outbox import Outbox
from tests.conftest import PYTHON
from tests.helpers import store_dir

#: The service the commands use when neither --url nor the environment names one.
DEFAULT_URL = "http://localhost:8053"


def cli(*args, env, timeout=60):
    return subprocess.run([PYTHON, "-m", "pattern_track", *args], capture_output=True, env=env, timeout=timeout)


def seed(cache_dir, n=3, dead=1, age_days=0, url=DEFAULT_URL):
    """n pending events and `dead` dead letters for service `url`, written `age_days` ago."""
    written = time.time() - age_days * 86400
    with mock.patch("time.time", lambda: written):
        _seed(store_dir(cache_dir, url), n, dead)


def _seed(directory, n, dead):
    box = Outbox(directory, max_events=100, max_bytes=10**6)
    box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"c{i}",
                            "pattern_data": {"code": "x", "event_id": f"id{i}"}}).encode() for i in range(n)])
    for i in range(dead):
        box.add_dead(json.dumps({"event_type": "pattern_modified", "pattern_id": f"d{i}", "parent_pattern_ids": ["p"],
                                 "pattern_data": {"code": "x", "event_id": f"dead{i}"}}).encode(),
                     "parent_not_found", "Parent pattern p not found")
    box.close()


def test_stats_as_table_and_json(env, cache_dir):
    """stats shows pending, dead letters and breaker; --json is machine-readable."""
    seed(cache_dir)
    table = cli("stats", env=env)
    assert table.returncode == 0 and b"pending events  3" in table.stdout
    rows = [line.split(maxsplit=1) for line in table.stdout.decode().splitlines()]
    assert rows[:2] == [["service", DEFAULT_URL], ["store", store_dir(cache_dir)]]
    doc = json.loads(cli("stats", "--json", env=env).stdout)
    assert doc["pending"] == 3 and doc["dead_letter"] == 1 and doc["breaker"]["state"] == "closed"
    assert (doc["service"], doc["cache_dir"], doc["store"], doc["other_services"], doc["legacy"]) == (
        DEFAULT_URL, os.path.abspath(cache_dir), store_dir(cache_dir), {}, None)
    assert doc["waiting"]["outbox"] == 3 and doc["quarantined"] == [] and doc["health"]["age_s"] is None


def pending(env):
    return json.loads(cli("stats", "--json", env=env).stdout)["pending"]


def test_dead_letter_list_retry_purge(env, cache_dir):
    """Dead letters are listed with the service's reason, can be retried or purged."""
    seed(cache_dir, n=0, dead=2)
    listed = json.loads(cli("dead-letter", "list", "--json", env=env).stdout)
    assert [row["reason"] for row in listed] == ["parent_not_found"] * 2
    assert listed[0]["detail"] == "Parent pattern p not found" and listed[0]["event_id"] == "dead0"
    assert b"2 dead letters" in cli("dead-letter", env=env).stdout
    assert json.loads(cli("dead-letter", "retry", "--json", env=env).stdout) == {"moved": 2, "dry_run": False}
    assert pending(env) == 2
    seed(cache_dir, n=0, dead=1)
    assert b"1 dead letters purged" in cli("dead-letter", "purge", "--yes", env=env).stdout
    assert json.loads(cli("stats", "--json", env=env).stdout)["dead_letter"] == 0


def test_dead_letter_retry_and_purge_have_a_dry_run(env, cache_dir):
    """--dry-run says how many would move or go, and changes nothing."""
    seed(cache_dir, n=0, dead=2)
    retry = cli("dead-letter", "retry", "--dry-run", "--json", env=env)
    assert json.loads(retry.stdout) == {"moved": 2, "dry_run": True}
    purge = cli("dead-letter", "purge", "--dry-run", "--json", env=env)
    assert json.loads(purge.stdout) == {"purged": 2, "dry_run": True}
    assert b"2 dead letters would be purged" in cli("dead-letter", "purge", "--dry-run", env=env).stdout
    stats = json.loads(cli("stats", "--json", env=env).stdout)
    assert stats["dead_letter"] == 2 and stats["pending"] == 0


def test_dead_letter_purge_needs_yes(env, cache_dir):
    """purge without --yes says how many would go, exits 2 and deletes nothing."""
    seed(cache_dir, n=0, dead=2)
    out = cli("dead-letter", "purge", "--json", env=env)
    assert out.returncode == 2 and out.stdout == b""
    assert b"2 undelivered events" in out.stderr and b"--yes" in out.stderr
    assert json.loads(cli("stats", "--json", env=env).stdout)["dead_letter"] == 2


def test_cleanup_reports_counts(env, cache_dir):
    """cleanup --yes removes old entries and says how many, as JSON or as a sentence."""
    seed(cache_dir)
    out = json.loads(cli("cleanup", "--max-age-days", "0", "--yes", "--json", env=env).stdout)
    assert out == {"expired_events": 3, "expired_dead_letters": 1, "max_age_days": 0.0, "dry_run": False}
    seed(cache_dir, n=1, dead=0)
    text = cli("cleanup", "--max-age-days", "0", "--yes", env=env).stdout
    assert text == b"removed 1 undelivered events and 0 dead letters older than 0 days\n"


def test_cleanup_refuses_to_delete_undelivered_events_without_yes(env, cache_dir):
    """Old pending events are not deleted without --yes: the message counts them, the exit is 2."""
    seed(cache_dir, n=3, dead=0, age_days=10)
    seed(cache_dir, n=2, dead=0)
    out = cli("cleanup", env=env)
    assert out.returncode == 2 and out.stdout == b""
    assert b"would delete 3 undelivered events" in out.stderr and b"--yes" in out.stderr and b"--dry-run" in out.stderr
    assert pending(env) == 5
    assert json.loads(cli("cleanup", "--yes", "--json", env=env).stdout)["expired_events"] == 3
    assert pending(env) == 2


def test_cleanup_dry_run_deletes_nothing(env, cache_dir):
    """cleanup --dry-run counts what would go, even with --max-age-days 0, and keeps it."""
    seed(cache_dir, n=3, dead=1, age_days=3)
    out = cli("cleanup", "--max-age-days", "0", "--dry-run", "--json", env=env)
    assert json.loads(out.stdout) == {"expired_events": 3, "expired_dead_letters": 1, "max_age_days": 0.0,
                                      "dry_run": True}
    text = cli("cleanup", "--max-age-days", "2.5", "--dry-run", env=env).stdout
    assert text == b"would remove 3 undelivered events and 1 dead letters older than 2.5 days\n"
    assert pending(env) == 3


def test_cleanup_of_old_dead_letters_alone_needs_no_yes(env, cache_dir):
    """Dead letters past the age go without --yes; nothing undelivered in the outbox is touched."""
    seed(cache_dir, n=0, dead=2, age_days=8)
    seed(cache_dir, n=1, dead=1)
    out = cli("cleanup", "--json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout) == {"expired_events": 0, "expired_dead_letters": 2,
                                                              "max_age_days": 7.0, "dry_run": False}
    assert pending(env) == 1


def test_cleanup_max_age_zero_needs_yes(env, cache_dir):
    """--max-age-days 0 means everything: refused without --yes even when nothing is pending."""
    out = cli("cleanup", "--max-age-days", "0", env=env)
    assert out.returncode == 2 and b"--yes" in out.stderr


@pytest.mark.parametrize("args", [
    ("cleanup", "--max-age-days", "-1"), ("cleanup", "--max-age-days", "nan"), ("sync", "--timeout", "0"),
    ("sync", "--timeout", "-5"), ("sync", "--timeout", "soon"), ("drain", "--idle", "0"), ("drain", "--max", "-1"),
    ("stats", "--url", "localhost:8053"),
])
def test_nonsense_values_are_usage_errors(env, args):
    """Negative, zero or non-numeric values where they make no sense: a clear message, exit 2."""
    out = cli(*args, env=env)
    assert out.returncode == 2
    assert f"argument {args[1]}: expected".encode() in out.stderr, out.stderr


def dead_port():
    probe = Collector().start()
    port = probe.port
    probe.stop()
    return port


def test_sync_exit_status_says_whether_anything_is_left(env, cache_dir):
    """sync exits 1 while the service is down, 0 once everything is delivered."""
    env = dict(env, PATTERN_TRACK_HANDOFF="false")  # no drainer delivers between the two syncs
    port = dead_port()
    url = f"http://127.0.0.1:{port}"  # one service, down and then up: its events wait in its store
    seed(cache_dir, dead=0, url=url)
    down = cli("sync", "--url", url, env=env)
    assert down.returncode == 1 and b"left 3" in down.stdout and b"why: service unhealthy" in down.stdout
    with Collector(port=port) as collector:
        up = cli("sync", "--url", collector.url, "--json", env=env)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout) == {"synced": 3, "dead_lettered": 0, "left": 0, "reason": None, "detail": None,
                                         "next_attempt_at": None, "retrying": 0, "parked": 0, "service": url,
                                         "other_services": {}, "legacy": None, "adopted_legacy": None,
                                         "quarantined": []}
        assert len(collector.events()) == 3
        assert cli("sync", "--url", collector.url, env=env).stdout == (
            f"synced 0, dead-lettered 0, left 0 (service {url})\n".encode())


@pytest.mark.parametrize("fault, params, extra, reason, detail, scheduled", [
    ("degraded", {}, {}, "service_unhealthy", "service unhealthy at", False),
    ("rate_limit", {"retry_after": "120"}, {}, "rate_limited", "rate-limiting", True),
    ("error", {"status": 503}, {}, "retrying", "3 events will be retried; last answer http_503", False),
    ("error", {"status": 503}, {"CIRCUIT_BREAKER_FAILURE_THRESHOLD": "1"}, "breaker_open",
     "circuit breaker open until", True),
])
def test_sync_says_why_events_are_left(env, cache_dir, fault, params, extra, reason, detail, scheduled):
    """With events left, sync names the reason and, when one is known, the time of the next attempt."""
    env = dict(env, PATTERN_TRACK_HANDOFF="false")  # no drainer changes the breaker between the two syncs
    with Collector() as collector:
        seed(cache_dir, dead=0, url=collector.url)
        collector.set_fault(fault, **params)
        out = cli("sync", "--url", collector.url, "--json", env=dict(env, **extra))
        text = cli("sync", "--url", collector.url, env=dict(env, **extra)).stdout.decode()
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and doc["left"] == 3 and doc["reason"] == reason and detail in doc["detail"], doc
    assert (doc["next_attempt_at"] is not None) == scheduled
    if scheduled:
        assert datetime.datetime.fromisoformat(doc["next_attempt_at"]) > datetime.datetime.now(datetime.timezone.utc)
    why = [line for line in text.splitlines() if line.startswith("why: ")]
    assert len(why) == 1 and detail in why[0] and "\nnext attempt: " in text


def home_env(env, tmp_path, **extra):
    """doctor and install read the user's Claude Code settings: give them a HOME of their own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(env, HOME=str(home), **extra)


def test_doctor_reports_config_cache_and_health(env, cache_dir, tmp_path):
    """doctor prints the configuration in force, the cache's mode, the outbox and live health."""
    with Collector() as collector:
        out = cli("doctor", "--url", collector.url, env=home_env(env, tmp_path, PATTERN_TRACK_API_KEY="sk-secret"))
    text = out.stdout.decode()
    assert out.returncode == 0, text
    assert "base_url = " in text and "(mode 700)" in text and "is healthy" in text
    assert "sk-secret" not in text and "api_key = 'set'" in text
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700


def test_doctor_shows_the_resolved_cache_path(env, tmp_path):
    """With no cache directory configured, doctor shows the one in use, never None."""
    environ = home_env(env, tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    del environ["PATTERN_CACHE_DIR"]
    with Collector() as collector:
        text = cli("doctor", "--url", collector.url, env=environ).stdout.decode()
    where = str(tmp_path / "xdg" / "pattern_track")
    assert f"cache_dir = {where!r}" in text and f"cache: {where} (mode 700)" in text and "None'" not in text


def test_doctor_lists_configuration_warnings(env, tmp_path):
    """A bad environment value is shown as a warning, counts as a problem, and is the next thing to fix."""
    with Collector() as collector:
        out = cli("doctor", "--url", collector.url, env=home_env(env, tmp_path, PATTERN_TRACK_BATCH_SIZE="-4"))
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 1
    assert "warning: ignoring PATTERN_TRACK_BATCH_SIZE: batch_size must be >= 1, got -4; using the default" in lines
    assert lines[-1].startswith("next: fix or unset the environment variables")


def test_doctor_fails_when_the_service_is_down(env, tmp_path):
    """doctor's exit status says something is wrong, shows the last failure, and says what to do next."""
    environ = home_env(env, tmp_path, HEALTH_CHECK_TIMEOUT="0.3")
    cli("sync", "--url", "http://127.0.0.1:9", env=environ)  # records a failed health check
    out = cli("doctor", "--url", "http://127.0.0.1:9", env=environ)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 1 and any("NOT healthy" in line for line in lines)
    assert any(line.startswith("last failure: service unhealthy (") for line in lines)
    assert lines[-1].startswith("next: start the service at http://127.0.0.1:9")


def test_doctor_says_when_the_hook_is_not_installed(env, tmp_path):
    """Without the hook in any settings file, doctor says so and says how to install it."""
    with Collector() as collector:
        out = cli("doctor", "--url", collector.url, "--json", env=home_env(env, tmp_path))
        text = cli("doctor", "--url", collector.url, env=home_env(env, tmp_path)).stdout.decode()
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["hook"] == {"installed": False, "locations": [], "errors": []}
    assert doc["next"] == "run `pattern-track install` so Claude Code's edits are tracked"
    assert "hook: not installed: run `pattern-track install`" in text
    assert text.splitlines()[-1] == "next: run `pattern-track install` so Claude Code's edits are tracked"


def test_doctor_does_not_repeat_its_prefix(env, tmp_path):
    """An unusable cache is reported once, on the cache line, without a second program prefix."""
    bad = tmp_path / "file"
    bad.write_text("x")
    out = cli("doctor", env=home_env(env, tmp_path, PATTERN_CACHE_DIR=str(bad)))
    text = out.stdout.decode()
    assert out.returncode == 1 and f"cache: {bad}: outbox unavailable: " in text and "pattern-track:" not in text
    assert text.splitlines()[-1].startswith(f"next: make {bad} a usable private directory")


def test_errors_are_one_clear_line(env, tmp_path):
    """An unusable cache is a one-line message and a non-zero exit, not a traceback."""
    bad = tmp_path / "file"
    bad.write_text("x")
    out = cli("stats", env=dict(env, PATTERN_CACHE_DIR=str(bad)))
    assert out.returncode != 0
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pattern-track:") and "Traceback" not in out.stderr.decode()


def test_serve_runs_the_collector(env):
    """serve prints its URL and answers health until terminated."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([PYTHON, "-m", "pattern_track", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert f"127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/pattern-traceability/health", timeout=5) as r:
            assert json.loads(r.read())["status"] == "healthy"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


COMMANDS = ["install", "drain", "sync", "stats", "cleanup", "dead-letter", "doctor", "hook"]


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_hook_help_returns_without_reading_stdin(env, flag):
    """hook --help prints how the hook is meant to be used and exits 0 while stdin stays open."""
    proc = subprocess.Popen([PYTHON, "-m", "pattern_track", "hook", flag], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        code = proc.wait(timeout=30)  # stdin is still open: a hook that read it would hang here
    finally:
        proc.kill()  # a no-op once it has exited
        out = proc.communicate()[0].decode()
    assert code == 0 and out.startswith("usage: pattern-track hook")
    assert "Claude Code runs it with one hook JSON payload on stdin; install it with\n`pattern-track install`" in out
    assert "exit status:" in out


def test_hook_on_a_terminal_says_how_to_use_it(env):
    """pattern-track hook typed at a terminal does not wait for a payload: a hint on stderr, exit 2."""
    import pty

    parent, child = pty.openpty()
    try:
        out = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], stdin=child, capture_output=True, env=env,
                             timeout=30)
    finally:
        os.close(child)
        os.close(parent)
    assert out.returncode == 2 and out.stdout == b""
    assert b"stdin is a terminal" in out.stderr and b"`pattern-track install`" in out.stderr


def test_hook_path_does_not_import_argparse(env):
    """The hook's fast path still skips argparse (and prints nothing) after the help and terminal checks."""
    out = subprocess.run([PYTHON, "-X", "importtime", "-m", "pattern_track", "hook"], input=b"{}", capture_output=True,
                         env=env, timeout=30)
    assert out.returncode == 0 and out.stdout == b""
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.decode().splitlines() if "|" in line}
    assert "pattern_track.cli.hook" in imported and "argparse" not in imported


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_documents_exit_status(env, command):
    """pattern-track --help and each command's --help list the exit codes."""
    out = cli(*([command] if command else []), "--help", env=env)
    text = out.stdout.decode()
    assert out.returncode == 0 and "exit status:\n  0    " in text and "\n  2    " in text
    assert command in ("hook",) or ("\n  1    " in text and "usage error" in text)


def test_every_option_says_its_unit_or_default():
    """Each option's help gives its default, and options taking a time or age name the unit."""
    import argparse

    from pattern_track.cli.main import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if not action.option_strings or action.help in (argparse.SUPPRESS, None) or action.dest == "help":
                continue
            if action.dest in ("user", "project"):  # the three places to install to; --user is the default
                continue
            assert "default" in action.help, (name, action.option_strings)
            if action.type is not None and action.dest not in ("url", "depth"):  # depth: a count of hops
                assert action.metavar in ("SECONDS", "DAYS", "PID"), (name, action.option_strings)


@pytest.mark.parametrize("args", [("stats",), ("sync", "--url", "http://127.0.0.1:9"), ("cleanup",),
                                  ("dead-letter", "list"), ("dead-letter", "retry"), ("dead-letter", "purge", "--yes"),
                                  ("doctor", "--url", "http://127.0.0.1:9"), ("install", "--dry-run")])
def test_every_command_speaks_json(env, cache_dir, tmp_path, args):
    """--json turns each command's summary into one JSON document on stdout."""
    seed(cache_dir, n=0, dead=1)
    out = cli(*args, "--json", env=home_env(env, tmp_path, HEALTH_CHECK_TIMEOUT="0.3"))
    assert out.returncode in (0, 1), out.stderr
    assert isinstance(json.loads(out.stdout), (dict, list))


# -- lineage --------------------------------------------------------------------------


def lineage_chain(c):
    """a -> b (modified), c, b + c -> d (merged), d 1.0.0 -> d 2.0.0 (bugfix), d -> e (forked)."""
    import requests

    for event in ({"event_type": "pattern_created", "pattern_id": "a", "pattern_data": {"code": "a"}},
                  {"event_type": "pattern_modified", "pattern_id": "b", "parent_pattern_ids": ["a"]},
                  {"event_type": "pattern_created", "pattern_id": "c", "pattern_data": {"code": "c"}},
                  {"event_type": "pattern_merged", "pattern_id": "d", "parent_pattern_ids": ["b", "c"]},
                  {"event_type": "pattern_modified", "pattern_id": "d", "pattern_version": "2.0.0",
                   "parent_pattern_ids": ["d"], "transformation_type": "bugfix"},
                  {"event_type": "pattern_forked", "pattern_id": "e", "parent_pattern_ids": ["d"],
                   "edge_type": "derived_from"}):
        answer = requests.post(c.url + "/api/pattern-traceability/lineage/track", json=event, timeout=5)
        assert answer.status_code == 200, answer.text


def shape(text):
    """The tree lines without their times: (indent, id, version, types, link)."""
    return [line.rsplit("  ", 1)[0] for line in text.splitlines()]


def test_lineage_shows_versions_ancestors_and_descendants(env, collector):
    """lineage prints the versions, the ancestor tree and the descendant tree, each line with types and a time."""
    lineage_chain(collector)
    out = cli("lineage", "d", "--url", collector.url, env=env)
    assert out.returncode == 0 and out.stderr == b""
    text = out.stdout.decode()
    assert shape(text) == [
        "d: 2 versions stored",
        "  1.0.0  generation 2",
        "  2.0.0  generation 3",
        "  1.0.0 -> 2.0.0  modified_from/bugfix",
        "ancestors (up to 10 hops):",
        "  b 1.0.0  merged_from/merge  into 1.0.0",
        "    a 1.0.0  modified_from/refactor  into 1.0.0",
        "  c 1.0.0  merged_from/merge  into 1.0.0",
        "descendants (up to 10 hops):",
        "  e 1.0.0  derived_from/refactor  from 2.0.0",
    ]
    when = text.splitlines()[5].rsplit("  ", 1)[1]
    assert datetime.datetime.fromisoformat(when).utcoffset() is not None
    top = cli("lineage", "a", "--url", collector.url, env=env).stdout.decode()
    assert shape(top)[-4:] == ["descendants (up to 10 hops):", "  b 1.0.0  modified_from/refactor  from 1.0.0",
                               "    d 1.0.0  merged_from/merge  from 1.0.0",
                               "      e 1.0.0  derived_from/refactor  from 2.0.0"]
    assert "  (none recorded)" in top


def test_lineage_json_is_the_walk(env, collector):
    """--json prints {nodes, edges}: every version of each pattern reached, each edge with its two pattern ids."""
    lineage_chain(collector)
    out = cli("lineage", "b", "--json", "--url", collector.url, env=env)
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    assert sorted((n["pattern_id"], n["version"]) for n in doc["nodes"]) == [
        ("a", "1.0.0"), ("b", "1.0.0"), ("d", "1.0.0"), ("d", "2.0.0"), ("e", "1.0.0")]
    assert sorted((e["source_pattern_id"], e["target_pattern_id"]) for e in doc["edges"]) == [
        ("a", "b"), ("b", "d"), ("d", "d"), ("d", "e")]
    assert doc["unreachable"] == {} and doc["truncated"] == {}


def test_lineage_depth_bounds_the_walk(env, collector):
    """--depth 1 stops one edge away each way and names what it did not walk; --depth 0 shows the pattern alone."""
    lineage_chain(collector)
    one = cli("lineage", "d", "--depth", "1", "--url", collector.url, env=env)
    assert one.returncode == 0
    assert "    a 1.0.0" not in one.stdout.decode() and "  a: not walked (depth)" in one.stdout.decode()
    doc = json.loads(cli("lineage", "d", "--depth", "0", "--json", "--url", collector.url, env=env).stdout)
    assert {n["pattern_id"] for n in doc["nodes"]} == {"d"} and doc["truncated"] == {
        "b": "depth", "c": "depth", "e": "depth"}
    assert cli("lineage", "d", "--depth", "-1", "--url", collector.url, env=env).returncode == 2


def test_lineage_of_an_unknown_id_exits_1(env, collector):
    """A pattern the service has no node for: exit 1, one line on stderr saying it is not stored."""
    out = cli("lineage", "ghost", "--url", collector.url, env=env)
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr.decode().splitlines() == [
        f"pattern-track: ghost is not stored at {collector.url} (the evolution route has no node for it)"]


@pytest.mark.parametrize("fault,said", [("db_down", "the service failed (500 Evolution path query failed"),
                                        ("html", "an answer that is not the route's JSON")])
def test_lineage_of_an_unreadable_service_exits_1(env, collector, fault, said):
    """A service whose answer does not tell: exit 1, one line on stderr saying it cannot be read and why."""
    lineage_chain(collector)
    collector.set_fault(fault)
    out = cli("lineage", "d", "--url", collector.url, env=env)
    assert out.returncode == 1 and out.stdout == b""
    [line] = out.stderr.decode().splitlines()
    assert line.startswith(f"pattern-track: cannot read what {collector.url} stored about d: {said}")


def test_lineage_keeps_its_timeout_against_a_hung_service(env, collector):
    """A service that never answers: exit 1 once --timeout has passed, saying there was no answer."""
    lineage_chain(collector)
    collector.set_fault("hang")
    try:
        started = time.monotonic()
        out = cli("lineage", "d", "--timeout", "0.5", "--url", collector.url, env=env, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        collector.set_fault("none")
    assert out.returncode == 1 and out.stderr.startswith(
        f"pattern-track: cannot read what {collector.url} stored about d: no ".encode())
    assert b"within" in out.stderr  # the read timeout or the alarm, whichever came first
    assert elapsed < 20  # interpreter start-up included; without a bound it would hang until the collector stops


def test_lineage_timeout_cuts_a_trickling_answer(env):
    """An answer trickling a byte at a time (each read well inside the read timeout) is cut at --timeout."""
    import socket
    import threading

    done = threading.Event()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not done.wait(0.05):  # one byte every 50 ms: 100 000 bytes would take over an hour
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        out = cli("lineage", "d", "--timeout", "1", "--url", f"http://127.0.0.1:{port}", env=env, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        server.close()
        thread.join(5)
    assert out.returncode == 1 and b"no complete answer within --timeout 1 s" in out.stderr, out.stderr
    assert elapsed < 20


def test_lineage_opens_no_outbox_and_starts_no_thread_or_process(env, collector, cache_dir):
    """lineage reads only: no cache directory is made, no thread is started, no process spawned."""
    lineage_chain(collector)
    code = (
        "import os, subprocess, sys, threading\n"
        "started = []\n"
        "start = threading.Thread.start\n"
        "threading.Thread.start = lambda self: (started.append(self.name), start(self))[1]\n"
        "popen, fork = subprocess.Popen.__init__, os.fork\n"
        "subprocess.Popen.__init__ = lambda *a, **k: started.append('process') or popen(*a, **k)\n"
        "os.fork = lambda: started.append('fork') or fork()\n"
        "from pattern_track.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('STARTED', started, threading.active_count(), rc)\n"
    )
    out = subprocess.run([PYTHON, "-c", code, "lineage", "d", "--json", "--url", collector.url],
                         capture_output=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().splitlines()[-1] == "STARTED [] 1 0"
    assert not os.path.exists(cache_dir)


def test_lineage_alarm_calls_abort_at_the_deadline():
    """The SIGALRM guard calls abort once its seconds pass while the main thread is blocked, then stands down."""
    import signal
    import threading

    from pattern_track.cli.lineage import _alarm

    fired = threading.Event()
    before = signal.getsignal(signal.SIGALRM)
    with _alarm(0.05, fired.set):
        assert fired.wait(10.0)
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_cache_dir_and_url_help_say_what_the_configuration_does(tmp_path):
    """--cache-dir and --url name every variable that sets them (the winner first) and the
    real default, $XDG_CACHE_HOME included: the same text in every command's help."""
    import argparse

    from pattern_track.cli.main import _parser
    from pattern_track.config import Config, default_cache_dir

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {option: {a.help for p in sub.choices.values() for a in p._actions if option in a.option_strings}
             for option in ("--cache-dir", "--url")}
    assert helps == {
        "--cache-dir": {"cache directory (default: $PATTERN_TRACK_CACHE_DIR or $PATTERN_CACHE_DIR, "
                        "else $XDG_CACHE_HOME/pattern_track, else ~/.cache/pattern_track)"},
        "--url": {"service base URL (default: $PATTERN_TRACK_BASE_URL or $INTELLIGENCE_SERVICE_URL, "
                  "else http://localhost:8053)"}}
    both = {"PATTERN_TRACK_CACHE_DIR": str(tmp_path / "a"), "PATTERN_CACHE_DIR": str(tmp_path / "b")}
    assert Config.from_env(both).resolved_cache_dir == str(tmp_path / "a")
    assert Config.from_env({"PATTERN_CACHE_DIR": str(tmp_path / "b")}).resolved_cache_dir == str(tmp_path / "b")
    assert default_cache_dir({"XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}) == "/xdg/pattern_track"
    assert default_cache_dir({"HOME": "/home/u"}) == "/home/u/.cache/pattern_track"
    urls = {"PATTERN_TRACK_BASE_URL": "http://a:1", "INTELLIGENCE_SERVICE_URL": "http://b:2"}
    assert Config.from_env(urls).base_url == "http://a:1" and Config.from_env({}).base_url == "http://localhost:8053"


def test_stats_shows_the_health_answer_with_its_age_and_the_keys_python_shows(env, cache_dir, make_tracker):
    """`stats` prints the stored health answer with how old it is; --json and Python's
    stats() name its time alike: checked_at (epoch seconds), last_check (ISO), age_s."""
    import re

    from pattern_track.delivery.health import describe

    seed(cache_dir, n=0, dead=0)
    box = Outbox(store_dir(cache_dir), max_events=100, max_bytes=10**6)
    record = {"healthy": True, "reason": "healthy", "answered": True, "monotonic": time.monotonic() - 90,
              "wall": time.time() - 90, "consecutive_failures": 0}
    box.set("health", record)
    box.close()
    table = cli("stats", env=env).stdout.decode()
    assert re.search(r"^health\s+True \(healthy\), 9\d s ago$", table, re.M), table
    health = json.loads(cli("stats", "--json", env=env).stdout)["health"]
    assert health["checked_at"] == record["wall"] and 90 <= health["age_s"] < 100
    assert health["last_check"] == datetime.datetime.fromtimestamp(record["wall"], datetime.timezone.utc).isoformat(
        timespec="seconds")
    keys = {"is_healthy", "reason", "checked_at", "last_check", "age_s", "consecutive_failures"}
    assert set(health) == keys == set(describe(None, 0.0))
    assert set(make_tracker(DEFAULT_URL).stats()["health"]) == keys
    box = Outbox(store_dir(cache_dir), max_events=100, max_bytes=10**6)
    box.set("health", None)
    box.close()
    assert re.search(r"^health\s+never checked$", cli("stats", env=env).stdout.decode(), re.M)


def test_dead_letter_list_shows_a_proxys_html_413_as_one_readable_line(env, cache_dir, collector, make_tracker):
    """An event a proxy refused with its HTML 413 page is listed with the status, its reason
    phrase and no HTML; --json keeps the detail as stored and adds that line as summary."""
    import http

    collector.set_fault("body_limit", max_bytes=200)
    tracker = make_tracker(collector.url, linger_s=0.0)
    tracker.track("pattern_created", pattern_id="big", pattern_data={"code": "x" * 1000})
    assert tracker.flush(10) and tracker.stats()["dead_letter"] == 1
    tracker.close()
    out = cli("dead-letter", "list", "--url", collector.url, env=env)
    lines = out.stdout.decode().splitlines()
    assert out.returncode == 0 and lines[-1] == "1 dead letters", out.stdout
    assert lines[0].endswith(f"  pattern_created  big  too_large_for_service: HTTP 413 {http.HTTPStatus(413).phrase}")
    assert "<" not in out.stdout.decode()
    row, = json.loads(cli("dead-letter", "list", "--url", collector.url, "--json", env=env).stdout)
    assert row["detail"].startswith("<html>") and row["summary"] == lines[0].split("  ")[-1]
