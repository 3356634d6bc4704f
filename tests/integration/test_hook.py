"""The Claude Code hook as the host runs it: a real process, payload on stdin, pipes watched."""

import json
import os
import subprocess

import pytest

from pattern_track.cli.hook import FileState, events_for
from pattern_track.collector import Collector
from tests.conftest import FIXTURES, PYTHON
from tests.helpers import kill_drainers

SAMPLES = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".json"))


def load(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def run_hook(stdin, env, timeout=15):
    """Run the hook; communicate() returns only when nobody holds its stdout/stderr any more."""
    proc = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], input=stdin, capture_output=True,
                          env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def expected_events(name, tmp_path):
    return len(events_for(json.loads(load(name)), FileState(str(tmp_path / "expect"))))


@pytest.fixture(params=["up", "down", "hung"])
def service(request, collector):
    if request.param == "down":
        probe = Collector().start()
        url = probe.url
        probe.stop()
        return request.param, url, None
    if request.param == "hung":
        collector.set_fault("hang")
    return request.param, collector.url, collector


@pytest.mark.parametrize("sample", SAMPLES)
def test_hook_contract_for_every_sample(sample, service, env, tmp_path):
    """Exit 0, nothing on stdout or stderr, pipes released, in every service state."""
    state, url, collector = service
    env = dict(env, INTELLIGENCE_SERVICE_URL=url)
    code, out, err = run_hook(load(sample), env)
    assert (code, out, err) == (0, b"", b"")
    if state == "up":
        expected = expected_events(sample, tmp_path)
        assert collector.wait_for_events(expected, timeout=15)
        assert len(collector.events()) == expected


@pytest.mark.parametrize("stdin", [b"", b"not json", b"\xff\xfe\x00garbage", b"[1,2,3]", b"null",
                                   b'{"hook_event_name": "PostToolUse", "tool_name": "Write", "tool_input": 5}',
                                   b'{"hook_event_name": "SomeFutureEvent", "x": 1}'])
def test_hook_ignores_bad_input_quietly(stdin, env):
    """Invalid JSON, wrong shapes and unknown events: exit 0, silent."""
    assert run_hook(stdin, env) == (0, b"", b"")


def test_hook_reads_a_large_payload_to_the_end(collector, env, cache_dir):
    """A 6 MB Write is read to EOF (no EPIPE for the host); the code kept is truncated and hashed."""
    content = "x = 1\n" * 1_000_000
    payload = {"hook_event_name": "PostToolUse", "tool_name": "Write", "session_id": "s",
               "tool_input": {"file_path": "/p/big.py", "content": content},
               "tool_response": {"type": "create", "filePath": "/p/big.py"}}
    env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url)
    assert run_hook(json.dumps(payload).encode(), env) == (0, b"", b"")
    assert collector.wait_for_events(1, timeout=15)
    data = collector.events()[0]["pattern_data"]
    assert data["code_truncated"] is True and data["code_chars"] == len(content)
    assert len(data["code"]) == 64 * 1024


def test_hook_survives_an_unusable_cache_directory(env, tmp_path):
    """A file where the cache should be: still exit 0 and silent."""
    bad = tmp_path / "not-a-dir"
    bad.write_text("x")
    env = dict(env, PATTERN_CACHE_DIR=str(bad))
    assert run_hook(load("post_tool_use_write.json"), env) == (0, b"", b"")


def test_edit_of_a_tracked_file_is_a_modification_of_its_pattern(tmp_path):
    """Write then Edit of the same file: the edit's parent is the written pattern."""
    files = FileState(str(tmp_path))
    write = {"hook_event_name": "PostToolUse", "tool_name": "Write",
             "tool_input": {"file_path": "/p/a.py", "content": "A = 1\n"}, "tool_response": {"type": "create"}}
    edit = {"hook_event_name": "PostToolUse", "tool_name": "Edit",
            "tool_input": {"file_path": "/p/a.py", "old_string": "1", "new_string": "2"},
            "tool_response": {"originalFile": "A = 1\n"}}
    (created,) = events_for(write, files)
    (modified,) = events_for(edit, files)
    assert created["event_type"] == "pattern_created" and modified["event_type"] == "pattern_modified"
    assert modified["parent_pattern_ids"] == [created["pattern_id"]]
    assert modified["language"] == "python" and modified["tool_name"] == "Edit"


def test_edit_of_an_unseen_file_records_its_original_first(tmp_path):
    """No known parent: the original content is created, then modified; never an unknown parent."""
    edit = json.loads(load("post_tool_use_edit.json"))
    created, modified = events_for(edit, FileState(str(tmp_path)))
    assert created["event_type"] == "pattern_created"
    assert modified["parent_pattern_ids"] == [created["pattern_id"]]
    assert "TIMEOUT = 10" in modified["pattern_data"]["code"]


def test_edit_without_original_content_is_a_creation(tmp_path):
    """Without the original and without history, the new content is a creation."""
    payload = {"hook_event_name": "PostToolUse", "tool_name": "Write",
               "tool_input": {"file_path": "/p/b.py", "content": "B = 1"}, "tool_response": {"type": "update"}}
    (only,) = events_for(payload, FileState(str(tmp_path)))
    assert only["event_type"] == "pattern_created"


@pytest.mark.parametrize("sample", ["pre_tool_use_bash.json", "stop.json", "user_prompt_submit.json"])
def test_other_events_are_ignored(sample, tmp_path):
    """Events that are not file edits produce nothing."""
    assert events_for(json.loads(load(sample)), FileState(str(tmp_path))) == []


def test_a_host_that_never_closes_stdin_cannot_wedge_the_hook(collector, env):
    """The whole payload is written but the pipe stays open: the hook finishes and keeps the event."""
    import time

    env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url)
    proc = subprocess.Popen([PYTHON, "-m", "pattern_track", "hook"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    started = time.monotonic()
    proc.stdin.write(load("post_tool_use_write.json"))
    proc.stdin.flush()  # and never close it
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        proc.stdin.close()
    assert time.monotonic() - started < 10
    assert proc.stdout.read() == b""
    assert collector.wait_for_events(1, timeout=15)


@pytest.mark.parametrize("where", ["file", "below_a_file"])
def test_an_unusable_cache_directory_falls_back_and_the_event_arrives(tmp_path, collector, env, where):
    """PATTERN_CACHE_DIR is a file, or lies below one: a private temp dir is used, nothing lost."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    bad = str(blocker) if where == "file" else str(blocker / "cache")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url, PATTERN_CACHE_DIR=bad, TMPDIR=str(temp))
    try:
        code, out, _err = run_hook(load("post_tool_use_write.json"), env)
        assert (code, out) == (0, b"")
        assert collector.wait_for_events(1, timeout=15)
        assert oct(os.stat(temp / f"pattern_track-{os.getuid()}").st_mode & 0o777) == "0o700"
    finally:
        kill_drainers(str(temp))
