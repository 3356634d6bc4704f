"""Process faults: SIGTERM and SIGKILL at random points while tracking and while draining."""

import json
import random
import signal
import subprocess

import pytest

from pattern_track.store.outbox import Outbox
from tests.conftest import PYTHON
from tests.helpers import kept_event_ids, kill_drainers, store_dir

TRACKING = r"""
import sys
from pattern_track import Tracker
url, cache, durable = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
tracker = Tracker(url, cache_dir=cache, durable=durable, read_timeout_s=30, request_deadline_s=60, lease_ttl_s=90)
i = 0
while True:
    event_id = tracker.track("pattern_created", pattern_id=f"k{i}", pattern_data={"code": str(i)})
    print(event_id, flush=True)
    i += 1
"""


def ids_on_disk(cache_dir):
    """Event ids kept on disk under ``cache_dir`` (outbox, spool, journals), drainers stopped."""
    kill_drainers(cache_dir)
    return kept_event_ids(cache_dir)


def kill_while_tracking(url, cache_dir, env, sig, durable, after):
    proc = subprocess.Popen([PYTHON, "-c", TRACKING, url, cache_dir, "1" if durable else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    returned = [proc.stdout.readline().strip().decode() for _ in range(after)]
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=30)
    # Only complete lines: the signal may land in the middle of a print().
    returned += [line.strip() for line in rest.decode().splitlines(keepends=True) if line.endswith("\n")]
    assert proc.returncode == -sig, err.decode()
    return [r for r in returned if len(r) == 32]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigterm_while_tracking_keeps_every_returned_event(collector, cache_dir, env, seed):
    """SIGTERM at a random point (service hung): every returned id is on disk, and the
    process dies of SIGTERM at once (no handler of ours delays it)."""
    collector.set_fault("hang")
    after = random.Random(seed).randint(1, 400)
    returned = kill_while_tracking(collector.url, cache_dir, env, signal.SIGTERM, False, after)
    assert len(returned) >= after
    assert set(returned) <= ids_on_disk(cache_dir)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_right_after_track_returned_loses_nothing(collector, cache_dir, env, seed):
    """The journal is written before track() returns: even SIGKILL keeps every returned event."""
    collector.set_fault("hang")
    after = random.Random(seed).randint(1, 300)
    returned = kill_while_tracking(collector.url, cache_dir, env, signal.SIGKILL, False, after)
    assert set(returned) <= ids_on_disk(cache_dir)


def test_sigterm_while_draining_then_rerun_delivers_everything(collector, cache_dir, env):
    """A sync stopped by SIGTERM mid-delivery leaves the rest for the next one."""
    box = Outbox(store_dir(cache_dir, collector.url), max_events=10**6, max_bytes=10**9)
    for c in range(100):
        box.append([json.dumps({"event_type": "pattern_created", "pattern_id": f"s{c}-{i}",
                                "pattern_data": {"code": "x", "event_id": f"{c}-{i}"}}).encode() for i in range(10)])
    box.close()
    collector.set_fault("slow", delay_s=0.02)
    env = dict(env, INTELLIGENCE_SERVICE_URL=collector.url, PATTERN_TRACK_BATCH_SIZE="10")
    proc = subprocess.Popen([PYTHON, "-m", "pattern_track", "sync"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert collector.wait_for_events(200, timeout=30)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    collector.set_fault("none")
    rerun = subprocess.run([PYTHON, "-m", "pattern_track", "sync"], env=env, capture_output=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    ids = {e["pattern_data"]["event_id"] for e in collector.events()}
    assert len(ids) == 1000
