"""The end of a process loses nothing: pools, SIGTERM mid-close, tracking after the exit
hook, fork at any moment, many processes killed at once, and short scripts that pay for
nothing. Real subprocesses against a loopback collector; every wait is bounded."""

import json
import signal
import subprocess
import textwrap

import pytest

from tests.conftest import PYTHON
from tests.helpers import eventually, kept_event_ids, kill_drainers

pytestmark = pytest.mark.slow

PRELUDE = """
import os, sys, json, time, threading, atexit, signal
from pattern_track import Tracker
URL, CACHE = sys.argv[1], sys.argv[2]
_emitting = threading.Lock()
def emit(ids):  # one line per call: print() from two threads can interleave text and newline
    with _emitting:
        sys.stdout.write(json.dumps(ids) + "\\n")
        sys.stdout.flush()
pause = threading.Event().wait  # scenario timing inside the child, never synchronisation
"""


def run(tmp_path, body, url, cache_dir, env, *, timeout=60, check=True):
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    done = subprocess.run([PYTHON, str(script), url, cache_dir], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    ids = set()
    for line in done.stdout.splitlines():
        ids.update(json.loads(line))
    return ids, done


def delivered_ids(collector):
    return {e["pattern_data"]["event_id"] for e in collector.events()}


def settle_all(collector, cache_dir, tracked, timeout=30):
    """Every tracked id ends delivered (the service is up): wait, bounded."""
    return eventually(lambda: tracked <= delivered_ids(collector), timeout)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_with_block_loses_nothing(tmp_path, collector, cache_dir, env, method):
    """`with Pool(3)` SIGTERMs workers right after their exit hooks: every event still arrives."""
    body = f"""
    import multiprocessing
    tracker = Tracker(URL, cache_dir=CACHE)
    def work(n):
        t = tracker if "{method}" == "fork" else Tracker(URL, cache_dir=CACHE)
        return [t.track("pattern_created", pattern_id=f"w{{n}}-{{i}}", pattern_data={{"code": str(i)}})
                for i in range(50)]
    if __name__ == "__main__":
        ctx = multiprocessing.get_context("{method}")
        with ctx.Pool(3) as pool:
            results = pool.map(work, range(3))
        emit([i for ids in results for i in ids])
    """
    tracked, _ = run(tmp_path, body, collector.url, cache_dir, env)
    assert len(tracked) == 150 and None not in tracked
    assert settle_all(collector, cache_dir, tracked), f"{len(tracked - delivered_ids(collector))} missing"


def test_sigterm_during_close_with_a_hung_service_keeps_everything(tmp_path, collector, cache_dir, env):
    """Service hung, 200 tracked, SIGTERM one second into close(timeout=5): 0 of 200 lost."""
    collector.set_fault("hang")
    body = """
    t = Tracker(URL, cache_dir=CACHE)
    ids = [t.track("pattern_created", pattern_id=f"h{i}", pattern_data={"code": "x"}) for i in range(200)]
    emit(ids)
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    t.close(timeout=5)
    """
    tracked, done = run(tmp_path, body, collector.url, cache_dir, env, check=False)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert len(tracked) == 200
    kill_drainers(cache_dir)
    assert tracked <= kept_event_ids(cache_dir)  # killed without an exit: all in its journal
    collector.set_fault("none")
    sync = subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--timeout", "30"], capture_output=True,
                          env=dict(env, INTELLIGENCE_SERVICE_URL=collector.url), timeout=60)
    assert sync.returncode == 0, sync.stderr  # any drainer adopts a dead writer's journal
    assert tracked <= delivered_ids(collector)


def test_tracking_after_the_exit_hook_is_delivered(tmp_path, collector, cache_dir, env):
    """A non-daemon thread, the application's executor and an atexit handler track late: all arrive."""
    body = """
    import concurrent.futures
    t = Tracker(URL, cache_dir=CACHE)
    late = []
    atexit.register(lambda: emit([t.track("pattern_created", pattern_id="atexit", pattern_data={"code": "a"})]))
    def worker():
        pause(0.3)  # still running when the main thread ends
        emit([t.track("pattern_created", pattern_id=f"thread{i}", pattern_data={"code": "b"}) for i in range(10)])
    threading.Thread(target=worker).start()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    def task(i):
        pause(0.05)
        emit([t.track("pattern_created", pattern_id=f"task{i}", pattern_data={"code": "c"})])
    for i in range(10):
        pool.submit(task, i)
    emit([t.track("pattern_created", pattern_id="main", pattern_data={"code": "d"})])
    """
    tracked, _ = run(tmp_path, body, collector.url, cache_dir, env)
    assert len(tracked) == 22 and None not in tracked
    assert settle_all(collector, cache_dir, tracked)


def test_fork_at_any_moment_after_the_first_track(tmp_path, collector, cache_dir, env):
    """Fork 0-300 ms after the first track(): each child delivers its own events, never the parent's."""
    body = """
    # linger_s=0: the background thread imports requests and sends while the sweep forks
    # (a fork during those imports once left a child, or the parent, blocked for good).
    import warnings  # 3.12+ warns whenever a threaded process forks: CPython's, not ours
    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
    t = Tracker(URL, cache_dir=CACHE, linger_s=0.0)
    ids = [t.track("pattern_created", pattern_id="parent0", pattern_data={"code": "p"})]
    for delay_ms in range(0, 301, 20):
        pause(delay_ms / 1000 / 15)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            mine = [t.track("pattern_created", pattern_id=f"child{delay_ms}-{i}", pattern_data={"code": "c"})
                    for i in range(3)]
            os.write(w, json.dumps(mine).encode())
            os.close(w)
            os._exit(0 if None not in mine and t.flush(10) else 1)  # a child that cannot deliver fails
        os.close(w)
        got = b""
        while chunk := os.read(r, 65536):
            got += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        ids += json.loads(got)
    emit(ids)
    """
    tracked, done = run(tmp_path, body, collector.url, cache_dir, env, timeout=120)
    assert done.stderr == "", done.stderr  # e.g. CPython's "release unlocked lock" from a fork hook
    assert len(tracked) == 1 + 16 * 3
    assert settle_all(collector, cache_dir, tracked)
    events = collector.events()
    parents = [e for e in events if e["pattern_id"] == "parent0"]
    assert len(parents) == 1, "a child resent its parent's event"


def test_eight_processes_sigtermed_at_once_with_requests_in_flight(tmp_path, collector, cache_dir, env):
    """8 trackers, slow service, SIGTERM to all at once mid-delivery: 0 lost."""
    collector.set_fault("slow", delay_s=0.3)
    script = tmp_path / "eight.py"
    script.write_text(PRELUDE + textwrap.dedent("""
    t = Tracker(URL, cache_dir=CACHE, linger_s=0.0, batch_size=5)
    i = 0
    while True:
        event_id = t.track("pattern_created", pattern_id=f"{os.getpid()}-{i}", pattern_data={"code": "x"})
        print(json.dumps([event_id]), flush=True)
        i += 1
        if i % 20 == 0:
            pause(0.01)
    """))
    procs = [subprocess.Popen([PYTHON, str(script), collector.url, cache_dir], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    tracked = set()
    for proc in procs:
        for _ in range(60):
            line = proc.stdout.readline()
            if not line:  # the child ended on its own: say why
                proc.wait(timeout=10)
                pytest.fail(f"a tracking process ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            tracked.update(json.loads(line))
    assert eventually(lambda: collector.state()["requests"].get("batch"), timeout=20)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        for line in out.splitlines():
            try:
                tracked.update(json.loads(line))
            except ValueError:  # a print() that SIGTERM cut: that id was never reported
                pass
        assert proc.returncode == -signal.SIGTERM
    tracked.discard(None)
    collector.set_fault("none")
    env_sync = dict(env, INTELLIGENCE_SERVICE_URL=collector.url)
    kill_drainers(cache_dir)
    subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--timeout", "60"], env=env_sync, capture_output=True,
                   timeout=90)
    missing = tracked - delivered_ids(collector) - kept_event_ids(cache_dir)
    assert not missing, f"{len(missing)} of {len(tracked)} lost"


def test_a_short_script_loads_no_network_parts_and_installs_no_signal_handler(tmp_path, collector, cache_dir, env):
    """One event and exit: requests and diskcache never imported, SIGTERM untouched, event delivered."""
    body = """
    t = Tracker(URL, cache_dir=CACHE)
    t.track_pattern_creation("def f(): pass", {"language": "python"})
    def report():
        print(json.dumps([]), flush=True)
        sys.stderr.write(json.dumps({"requests": "requests" in sys.modules, "diskcache": "diskcache" in sys.modules,
                                     "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}))
    atexit.register(report)
    """
    _, done = run(tmp_path, body, collector.url, cache_dir, env)
    facts = json.loads(done.stderr)
    assert facts == {"requests": False, "diskcache": False, "sigterm_default": True}
    assert collector.wait_for_events(1, timeout=15)


def test_close_twice_and_a_bad_timeout(tmp_path, collector, cache_dir, env):
    """A second close() waits for the first; close(timeout='1') neither raises nor loses events."""
    from pattern_track import Tracker

    tracker = Tracker(collector.url, cache_dir=cache_dir)
    ids = {tracker.track("pattern_created", pattern_id=f"c{i}", pattern_data={"code": "x"}) for i in range(100)}
    tracker.close(timeout="1")
    tracker.close()
    assert settle_all(collector, cache_dir, ids)


def test_a_tracker_first_made_in_an_atexit_handler_still_delivers(tmp_path, collector, cache_dir, env):
    """Exit already began when the tracker is made: its events are journaled and handed off."""
    body = """
    def late():
        t = Tracker(URL, cache_dir=CACHE)
        emit([t.track("pattern_created", pattern_id=f"late{i}", pattern_data={"code": "l"}) for i in range(20)])
    atexit.register(late)
    """
    tracked, done = run(tmp_path, body, collector.url, cache_dir, env)
    assert len(tracked) == 20 and None not in tracked and done.stderr == ""
    assert settle_all(collector, cache_dir, tracked)


def test_close_during_an_outage_hands_the_outbox_to_a_drainer(tmp_path, collector, cache_dir, env):
    """close() with the service failing puts events in the outbox and starts a drainer that
    delivers them when the service is back, without any other process or a sync."""
    collector.set_fault("error", status=503)
    body = """
    with Tracker(URL, cache_dir=CACHE, breaker_reset_timeout_s=0.5) as t:
        emit([t.track("pattern_created", pattern_id=f"c{i}", pattern_data={"code": "c"}) for i in range(20)])
    """
    tracked, _ = run(tmp_path, body, collector.url, cache_dir, env)
    collector.set_fault("none")
    assert len(tracked) == 20 and settle_all(collector, cache_dir, tracked, timeout=60)


def test_get_tracker_first_used_in_an_atexit_handler_raises_nothing(tmp_path, collector, cache_dir, env):
    """The tracker's modules first imported inside an atexit handler of a process that never
    imported threading (so CPython skipped its threading shutdown): no exception reaches
    the application, and the event is handed off and delivered by itself."""
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent("""
        import atexit, json, sys
        import pattern_track  # cheap; the tracker itself is imported only at exit
        def late():
            from pattern_track import get_tracker
            print(json.dumps([get_tracker().track("pattern_created", pattern_id="late", pattern_data={"c": 1})]),
                  flush=True)
        atexit.register(late)
        assert "pattern_track.tracker" not in sys.modules
    """))
    done = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60,
                          env=dict(env, INTELLIGENCE_SERVICE_URL=collector.url))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    tracked = set(json.loads(done.stdout))
    assert len(tracked) == 1 and None not in tracked
    assert eventually(lambda: tracked <= delivered_ids(collector), timeout=20)


def test_short_scripts_in_a_row_deliver_each_event_once(collector, cache_dir, env):
    """Twenty scripts, one after another, each tracks 400 events, reads its stats and
    just ends (service up). A script's drainer thread may be sending a batch it adopted
    from the one before when its own exit comes: exit lets that batch finish and settle
    (within exit_timeout_s) instead of leaving it to be sent again."""
    script = ("import sys\n"
              "from pattern_track import get_tracker\n"
              "t = get_tracker()\n"
              "for i in range(400):\n"
              "    t.track('pattern_created', pattern_id=f'{sys.argv[1]}-{i}', pattern_data={'c': i})\n"
              "t.stats()\n")
    env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url, PATTERN_TRACK_EXIT_TIMEOUT_S="2")
    for run in range(20):
        done = subprocess.run([PYTHON, "-c", script, f"s{run}"], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0 and done.stderr == b""
    assert collector.wait_for_events(8000, timeout=30)
    assert eventually(lambda: not kept_event_ids(cache_dir), timeout=30)
    stored = [e["pattern_id"] for e in collector.events()]
    assert len(set(stored)) == 8000 and len(stored) - 8000 == 0, f"{len(stored) - 8000} duplicates"
