"""The pattern-track command line, run as a user runs it."""

import json
import os
import stat
import subprocess

import pytest

from tests.conftest import PYTHON
from pattern_track.collector import Collector
from pattern_track.outbox import Outbox


def cli(*args, env, timeout=60):
    return subprocess.run([PYTHON, "-m", "pattern_track", *args], capture_output=True, env=env, timeout=timeout)


def seed(cache_dir, n=3, dead=1):
    box = Outbox(cache_dir, max_events=100, max_bytes=10**6)
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
    doc = json.loads(cli("stats", "--json", env=env).stdout)
    assert doc["pending"] == 3 and doc["dead_letter"] == 1 and doc["breaker"]["state"] == "closed"


def test_dead_letter_list_retry_purge(env, cache_dir):
    """Dead letters are listed with the service's reason, can be retried or purged."""
    seed(cache_dir, n=0, dead=2)
    listed = json.loads(cli("dead-letter", "list", "--json", env=env).stdout)
    assert [row["reason"] for row in listed] == ["parent_not_found"] * 2
    assert listed[0]["detail"] == "Parent pattern p not found" and listed[0]["event_id"] == "dead0"
    assert cli("dead-letter", "retry", env=env).returncode == 0
    assert json.loads(cli("stats", "--json", env=env).stdout)["pending"] == 2
    seed(cache_dir, n=0, dead=1)
    assert b"1 dead letters purged" in cli("dead-letter", "purge", env=env).stdout


def test_cleanup_reports_counts(env, cache_dir):
    """cleanup removes old entries and says how many."""
    seed(cache_dir)
    out = json.loads(cli("cleanup", "--max-age-days", "0", env=env).stdout)
    assert out["expired_events"] == 3 and out["expired_dead_letters"] == 1


def test_sync_exit_status_says_whether_anything_is_left(env, cache_dir):
    """sync exits 1 while the service is down, 0 once everything is delivered."""
    seed(cache_dir, dead=0)
    probe = Collector().start()
    url = probe.url
    probe.stop()
    down = cli("sync", "--url", url, env=env)
    assert down.returncode == 1 and b"unhealthy" in down.stderr
    with Collector() as collector:
        up = cli("sync", "--url", collector.url, env=env)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout) == {"synced": 3, "dead_lettered": 0, "left": 0}
        assert len(collector.events()) == 3


def test_doctor_reports_config_cache_and_health(env, cache_dir):
    """doctor prints the configuration in force, the cache's mode, the outbox and live health."""
    with Collector() as collector:
        out = cli("doctor", "--url", collector.url, env=dict(env, PATTERN_TRACK_API_KEY="sk-secret"))
    text = out.stdout.decode()
    assert out.returncode == 0, text
    assert "base_url = " in text and "(mode 700)" in text and "is healthy" in text
    assert "sk-secret" not in text and "api_key = 'set'" in text
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700


def test_doctor_fails_when_the_service_is_down(env):
    """doctor's exit status says something is wrong."""
    out = cli("doctor", "--url", "http://127.0.0.1:9", env=dict(env, HEALTH_CHECK_TIMEOUT="0.3"))
    assert out.returncode == 1 and b"NOT healthy" in out.stdout


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
        out = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], stdin=child, capture_output=True, env=env, timeout=30)
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
    assert "pattern_track.hook" in imported and "argparse" not in imported
