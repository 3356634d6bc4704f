"""Recovery: from the service coming back to the last pending event delivered.

Two workloads while the service answers 503 (its database unavailable): a series of
one-event scripts (each ends at once and hands its journal to a detached drainer), and a
long-running tracker in this process. Then the service recovers; the figure is the time
until the collector holds every event. No manual action is taken (no sync).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

PYTHON = sys.executable

ONE_EVENT = textwrap.dedent("""
    import sys
    from pattern_track import Tracker
    t = Tracker(sys.argv[1], cache_dir=sys.argv[2])
    t.track_pattern_creation(sys.argv[3], {"language": "python"})
""")


def _until_stored(b: Any, count: int, limit_s: float) -> float:
    from tests.helpers import eventually

    start = time.monotonic()
    if not eventually(lambda: b.collector.state()["events"] >= count, timeout=limit_s):
        return float("nan")
    return time.monotonic() - start


def bench_recovery(b: Any) -> None:
    from pattern_track import Tracker
    from tests.helpers import kill_drainers

    n = b.size["recovery_n"]
    results = {}
    # Short scripts: each hands off to a detached drainer, which retries on its backoff.
    b.collector.reset()
    b.collector.fault("error", status=503)
    cache = b.fresh_dir("recovery-scripts")
    for i in range(n):
        subprocess.run([PYTHON, "-c", ONE_EVENT, b.collector.url, cache, f"r = {i}"], env=b.env(cache),
                       capture_output=True, timeout=60)
    b.collector.fault("none")
    results["short_scripts"] = {"events": n, "recovery_s": _until_stored(b, n, 120.0)}
    kill_drainers(b.root)
    # A long-running process: its own drainer thread finds the service back.
    b.collector.reset()
    b.collector.fault("error", status=503)
    tracker = Tracker(b.collector.url, cache_dir=b.fresh_dir("recovery-service"))
    try:
        for i in range(n):
            tracker.track_pattern_creation(f"s = {i}", {"language": "python"})
        tracker.flush(10)
        b.collector.fault("none")
        results["long_running"] = {"events": n, "recovery_s": _until_stored(b, n, 120.0)}
    finally:
        tracker.close(timeout=1)
    b.results["recovery"] = results
    for label, v in results.items():
        b.check(f"recovery, {label.replace('_', ' ')} (service back -> last event delivered)",
                v["recovery_s"], "<=", 60.0, "s")


def report_recovery(r: dict) -> list[str]:
    lines = ["9. recovery with no manual action: service back (503 -> 200) until the last pending event is delivered"]
    for label, v in r.items():
        lines.append(f"   {label.replace('_', ' ')}: {v['events']} events, {v['recovery_s']:.1f} s")
    return [*lines, ""]
