"""Every accepted event arrives by itself (issue 15): real processes, nothing run by hand.

Each scenario runs a script the way a user would and then runs nothing else of ours: the
detached drainer the script made sure of is the only thing that may deliver. Waits are
bounded waits on the collector's state, never sleeps.
"""

import json
import os
import signal
import subprocess
import tempfile
import textwrap

import pytest

from pattern_track.collector import Collector
from tests.conftest import PYTHON, remount_read_only

pytestmark = pytest.mark.slow

TRACK = """
import os, sys, threading
from pattern_track import Tracker, get_tracker
URL, CACHE, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
def many(t, prefix="e"):
    return [t.track("pattern_created", pattern_id=f"{prefix}{i}", pattern_data={"code": str(i)}) for i in range(N)]
"""


def script(tmp_path, body):
    path = tmp_path / "script.py"
    path.write_text(TRACK + textwrap.dedent(body))
    return str(path)


def run(tmp_path, body, url, cache, n, env, **kwargs):
    done = subprocess.run([PYTHON, script(tmp_path, body), url, cache, str(n)], env=env, capture_output=True,
                          text=True, timeout=60, **kwargs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "", done.stderr  # the library never prints
    return done


def test_close_with_a_tiny_timeout_still_delivers_everything(tmp_path, collector, cache_dir, env):
    """close(0.1) against a healthy service: what it could not send in 0.1 s arrives anyway."""
    run(tmp_path, "t = Tracker(URL, cache_dir=CACHE)\nassert all(many(t))\nt.close(0.1)\n",
        collector.url, cache_dir, 20, env)
    assert collector.wait_for_events(20, timeout=20), collector.state()


def test_sigkill_right_after_track_is_delivered_without_another_run(tmp_path, collector, cache_dir, env):
    """A script SIGKILLed right after tracking: its events arrive with no other process of ours run."""
    body = "t = Tracker(URL, cache_dir=CACHE)\nassert all(many(t))\nprint('tracked', flush=True)\nsys.stdin.read()\n"
    proc = subprocess.Popen([PYTHON, script(tmp_path, body), collector.url, cache_dir, "20"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"tracked\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        stream.close()
    assert collector.wait_for_events(20, timeout=20), collector.state()


def test_an_event_tracked_in_an_atexit_handler_is_delivered(tmp_path, collector, cache_dir, env):
    """atexit tracking goes to the journal and a drainer delivers it, with nothing else run."""
    body = "import atexit\nt = Tracker(URL, cache_dir=CACHE)\natexit.register(lambda: many(t, 'x'))\n"
    run(tmp_path, body, collector.url, cache_dir, 3, env)
    assert collector.wait_for_events(3, timeout=20), collector.state()


def test_an_outage_with_default_settings_recovers_within_seconds(tmp_path, cache_dir, env):
    """Five one-event scripts while the service is down; once it is back, they arrive within 10 s."""
    from tests.integration.test_cli import dead_port

    port = dead_port()
    url = f"http://127.0.0.1:{port}"
    path = script(tmp_path, "t = get_tracker()\nassert all(many(t, f'k{os.getpid()}-'))\n")
    for _ in range(5):
        subprocess.run([PYTHON, path, url, cache_dir, "1"], env=dict(env, INTELLIGENCE_SERVICE_URL=url),
                       check=True, timeout=60)
    # The drainer has found the service down (its breaker is open or its health check failed).
    with Collector(port=port) as collector:
        assert collector.wait_for_events(5, timeout=10), collector.state()


def test_a_full_disk_still_delivers_from_memory_before_the_process_ends(tmp_path, collector, env, small_mount):
    """Disk full: the journal cannot be written, yet a short script's events all arrive."""
    root = small_mount("size=64k,mode=0700")
    with open(os.path.join(root, "filler"), "wb") as handle:
        try:
            handle.write(b"\0" * (1 << 20))
        except OSError:
            pass
    body = "t = Tracker(URL, cache_dir=CACHE)\nassert all(many(t))\n"
    run(tmp_path, body, collector.url, os.path.join(root, "cache"), 20, env)
    assert collector.wait_for_events(20, timeout=10), collector.state()


@pytest.mark.parametrize("how", ["tracker", "get_tracker", "hook"])
def test_a_read_only_cache_still_delivers(tmp_path, collector, env, small_mount, how):
    """A read-only cache directory (containers, Lambda): events still arrive, by every way in."""
    root = small_mount("size=256k,mode=0700")
    os.mkdir(os.path.join(root, "cache"), 0o700)
    remount_read_only(root)
    cache = os.path.join(root, "cache")
    environ = dict(env, PATTERN_CACHE_DIR=cache, INTELLIGENCE_SERVICE_URL=collector.url,
                   TMPDIR=root)  # the temp-dir fallback is read-only too: only memory is left
    if how == "hook":
        payload = {"hook_event_name": "PostToolUse", "tool_name": "Write", "session_id": "s",
                   "tool_input": {"file_path": "/src/a.py", "content": "def a():\n    return 1\n"},
                   "tool_response": {"type": "create"}}
        done = subprocess.run([PYTHON, "-m", "pattern_track", "hook"], input=json.dumps(payload), env=environ,
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        # The per-user temp directory under /tmp may take the event (tempfile skips a
        # read-only TMPDIR): then a detached drainer (nice 10) delivers it, seconds on a
        # loaded machine; else the hook sent it itself before exiting.
        assert collector.wait_for_events(1, timeout=30), (collector.state()["requests"], sorted(
            os.listdir(tempfile.gettempdir())))
        return
    body = (("t = Tracker(URL, cache_dir=CACHE)\n" if how == "tracker" else "t = get_tracker()\n")
            + "assert all(many(t))\n")
    run(tmp_path, body, collector.url, cache, 10, environ)
    assert collector.wait_for_events(10, timeout=10), collector.state()


def test_a_damaged_outbox_is_replaced_at_once_and_named_until_removed(tmp_path, collector, cache_dir, env):
    """Garbage over cache.db between two runs: the next run's events arrive; stats, sync and doctor
    name the store moved aside, and doctor exits 1 until it is removed."""
    from tests.helpers import kill_drainers, store_dir

    body = "t = Tracker(URL, cache_dir=CACHE)\nassert all(many(t, sys.argv[4]))\nt.close(2)\n"
    path = script(tmp_path, body)
    subprocess.run([PYTHON, path, collector.url, cache_dir, "5", "a"], env=env, check=True, timeout=60)
    assert collector.wait_for_events(5, timeout=20)
    kill_drainers(cache_dir)
    database = os.path.join(store_dir(cache_dir, collector.url), "cache.db")
    with open(database, "r+b") as handle:
        handle.write(os.urandom(16384))
    subprocess.run([PYTHON, path, collector.url, cache_dir, "5", "b"], env=env, check=True, timeout=60)
    assert collector.wait_for_events(10, timeout=20), collector.state()
    environ = dict(env, HOME=str(tmp_path), PATTERN_TRACK_HANDOFF="false")

    def cli(*args):
        return subprocess.run([PYTHON, "-m", "pattern_track", *args, "--url", collector.url], env=environ,
                              capture_output=True, text=True, timeout=60)

    stats = json.loads(cli("stats", "--json").stdout)
    assert len(stats["quarantined"]) == 1 and stats["quarantined"][0].startswith("cache.db.corrupt-")
    assert "damaged, moved aside" in cli("sync").stdout
    doctor = cli("doctor")
    assert doctor.returncode == 1 and "damaged file moved aside" in doctor.stdout
    for name in os.listdir(os.path.dirname(database)):
        if ".corrupt-" in name:
            os.unlink(os.path.join(os.path.dirname(database), name))
    assert json.loads(cli("stats", "--json").stdout)["quarantined"] == []


def test_track_from_a_finalizer_at_interpreter_shutdown_never_raises_or_prints(tmp_path, collector, cache_dir, env):
    """__del__ calling track() while the interpreter tears down: no exception, nothing printed."""
    body = """
    t = Tracker(URL, cache_dir=CACHE)
    class Late:
        def __del__(self):
            t.track("pattern_created", pattern_id="late", pattern_data={"code": "z"})
            t.track("no such type", pattern_id="bad")  # refused: its error path must not import
    keep = Late()  # collected during module teardown, after every exit hook
    """
    for _ in range(3):
        run(tmp_path, body, collector.url, cache_dir, 0, env)


@pytest.mark.parametrize("make", [
    "t = Tracker(URL, cache_dir=CACHE)",  # made at import; its first event comes at teardown
    "t = None",  # the process-wide tracker (get_tracker), first asked for at teardown
])
def test_a_first_event_from_a_finalizer_at_shutdown_is_delivered(tmp_path, collector, cache_dir, env, make):
    """When __del__ runs at module teardown, sys.modules is cleared and no import works: the
    first track() (and get_tracker()) must need none, and the event must arrive."""
    body = f"""
    {make}
    class Late:
        def __del__(self):
            (t or get_tracker()).track("pattern_created", pattern_id="only-late", pattern_data={{"code": "z"}})
    keep = Late()
    """
    run(tmp_path, textwrap.dedent(body), collector.url, cache_dir, 0,
        dict(env, PATTERN_CACHE_DIR=cache_dir, INTELLIGENCE_SERVICE_URL=collector.url))
    assert collector.wait_for_events(1, timeout=20), collector.state()
    assert collector.events()[0]["pattern_id"] == "only-late"


@pytest.mark.parametrize("lock", ["dispatcher", "journal"])
def test_exit_never_waits_for_a_sender_blocked_on_a_lock_the_main_thread_left_held(tmp_path, cache_dir, env, lock):
    """The hazard of a SIGTERM handler calling sys.exit between acquire and with: the lock stays
    held; the sender in a slow request then waits for it. Exit must end anyway, promptly."""
    body = f"""
    t = Tracker(URL, cache_dir=CACHE, linger_s=0.0)
    assert all(many(t))
    threading.Event().wait(0.3)  # the sender is inside a slow request now
    lock = t._dispatcher._cond if "{lock}" == "dispatcher" else t._journal._lock
    lock.acquire()  # never released, as after an exception at the wrong instant
    sys.exit(0)
    """
    with Collector() as collector:
        collector.set_fault("slow", delay_s=1.0)
        done = subprocess.run([PYTHON, script(tmp_path, body), collector.url, cache_dir, "300"], env=env,
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
