"""Many processes on one outbox: concurrent hooks, rival syncs, a sync killed with SIGKILL."""

import itertools
import json
import pathlib
import signal
import subprocess
from collections import Counter

from pattern_track.collector import Collector
from pattern_track.store.outbox import Outbox
from tests.conftest import PYTHON
from tests.helpers import store_dir


def write_payload(i):
    return json.dumps({"hook_event_name": "PostToolUse", "tool_name": "Write", "session_id": f"s{i}",
                       "tool_input": {"file_path": f"/p/f{i}.py", "content": f"V{i} = {i}\n"},
                       "tool_response": {"type": "create"}}).encode()


def start(args, env, **kw):
    return subprocess.Popen([PYTHON, "-m", "pattern_track", *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def event_ids(collector):
    return Counter(e["pattern_data"]["event_id"] for e in collector.events())


def test_concurrent_hooks_then_rival_syncs_deliver_everything(env):
    """20 hooks at once with the service down, then two syncs at once: every event, once."""
    probe = Collector().start()
    port = probe.port
    probe.stop()
    env = dict(env, INTELLIGENCE_SERVICE_URL=f"http://127.0.0.1:{port}", PATTERN_TRACK_CONNECT_TIMEOUT_S="0.3")
    hooks = [start(["hook"], env) for _ in range(20)]
    for i, proc in enumerate(hooks):
        out, err = proc.communicate(write_payload(i), timeout=30)
        assert (proc.returncode, out, err) == (0, b"", b"")
    with Collector(port=port) as collector:
        syncs = [start(["sync"], env) for _ in range(2)]
        results = [p.communicate(timeout=60) for p in syncs]
        assert collector.wait_for_events(20, timeout=30), results
        ids = event_ids(collector)
        assert len(ids) == 20
        assert sum(ids.values()) - len(ids) == 0, "duplicates"
        assert any(p.returncode == 0 for p in syncs), results


def test_sync_killed_mid_run_loses_nothing(env, cache_dir):
    """SIGKILL a sync while it delivers; a rerun delivers the rest. Duplicates stay under 1 %."""
    total = 2000
    with Collector() as collector:
        box = Outbox(store_dir(cache_dir, collector.url), max_events=10**6, max_bytes=10**9)
        for chunk in range(total // 10):
            events = [json.dumps({"event_type": "pattern_created", "pattern_id": f"k{chunk}-{i}", "language": "python",
                                  "pattern_data": {"code": "x", "event_id": f"{chunk:04d}{i:02d}"}}).encode()
                      for i in range(10)]
            assert box.append(events)
        box.close()
        collector.set_fault("slow", delay_s=0.02)
        env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url, PATTERN_TRACK_BATCH_SIZE="10")
        victim = start(["sync"], env)
        assert collector.wait_for_events(500, timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)  # reaped: its lease is recognisably dead
        collector.set_fault("none")
        rerun = start(["sync"], env)
        _out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        ids = event_ids(collector)
        duplicates = sum(ids.values()) - len(ids)
        assert len(ids) == total
        assert duplicates <= total // 100, duplicates
        print(f"kill test: {duplicates} duplicates of {total} ({100 * duplicates / total:.2f} %)")


LEASE_RACER = r"""
import os, sys, time
from pattern_track.store.outbox import Outbox
cache, ttl, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
box = Outbox(cache, max_events=10, max_bytes=10**6)
me = f"{os.uname().nodename}:{os.getpid()}:racer"
holds = []
deadline = time.monotonic() + 3.0
while time.monotonic() < deadline and len(holds) < 150:
    if box.acquire_lease("drain", me, ttl):
        start = time.monotonic()
        end = time.monotonic() + 0.0005
        while time.monotonic() < end:
            pass
        holds.append((start, time.monotonic()))
        box.release_lease("drain", me)
with open(out, "w") as f:
    f.write("\n".join(f"{a} {b}" for a, b in holds))
"""


def test_the_drain_lease_is_exclusive_across_processes_whatever_their_ttls(tmp_path, cache_dir, env):
    """Four processes with TTLs from 5 s to 120 s race for the lease: no two holds overlap."""
    outs = [str(tmp_path / f"holds{i}") for i in range(4)]
    procs = [subprocess.Popen([PYTHON, "-c", LEASE_RACER, cache_dir, str(ttl), out], env=env)
             for ttl, out in zip((5, 30, 60, 120), outs)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    holds = sorted((*map(float, line.split()), i) for i, out in enumerate(outs)
                   for line in pathlib.Path(out).read_text().splitlines() if line)
    overlaps = sum(1 for (s1, e1, p1), (s2, e2, p2) in itertools.pairwise(holds) if s2 < e1 and p1 != p2)
    assert len(holds) > 20 and overlaps == 0, f"{overlaps} overlapping holds in {len(holds)}"
