"""The kill matrix: processes killed at random points, pools and many processes at once.

For each scenario, tracking processes print every id ``track()`` returned; they are
killed (SIGTERM, SIGKILL, ``os._exit``) at a random moment while tracking, while their
sender is mid-request (slow service) or while a sync drains; then the service is made
healthy, ``pattern-track sync`` runs once, and the returned ids are compared with what
the collector stored and what is still kept on disk. Lost = returned, neither delivered
nor kept; duplicates = deliveries of an id beyond the first.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable

TRACKER = textwrap.dedent("""
    import os, sys, json
    from pattern_track import Tracker
    url, cache, how = sys.argv[1], sys.argv[2], sys.argv[3]
    t = Tracker(url, cache_dir=cache, linger_s=0.0, batch_size=20)
    i = 0
    while True:
        print(json.dumps(t.track("pattern_created", pattern_id=f"{os.getpid()}-{i}", pattern_data={"code": "x"})),
              flush=True)
        i += 1
        if how == "exit" and i == int(sys.argv[4]):
            os._exit(0)
""")

POOL = textwrap.dedent("""
    import sys, json, multiprocessing
    from pattern_track import Tracker
    url, cache, method = sys.argv[1], sys.argv[2], sys.argv[3]
    def work(n):
        t = Tracker(url, cache_dir=cache)
        return [t.track("pattern_created", pattern_id=f"w{n}-{i}", pattern_data={"code": str(i)}) for i in range(50)]
    if __name__ == "__main__":
        with multiprocessing.get_context(method).Pool(3) as pool:
            for ids in pool.map(work, range(3)):
                print(json.dumps(ids), flush=True)
""")


def _ids(lines: list[str]) -> set:
    found = set()
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a print cut by the signal: that id was never reported
        found.update(v for v in (value if isinstance(value, list) else [value]) if v)
    return found


def _killed(url: str, cache: str, env: dict, how: str, after_s: float, processes: int = 1) -> set:
    stop = random.randint(50, 400)
    procs = [subprocess.Popen([PYTHON, "-c", TRACKER, url, cache, how, str(stop)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(processes)]
    if how != "exit":
        time.sleep(after_s)  # a random moment in the child's life (scenario timing, not a wait)
        for proc in procs:
            proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
    tracked: set = set()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        tracked |= _ids(out.splitlines())
    return tracked


def _pool(url: str, cache: str, env: dict, method: str) -> set:
    script = cache + "-pool.py"  # spawn re-imports __main__ from a file: `python -c` has none
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(POOL)
    done = subprocess.run([PYTHON, script, url, cache, method], env=env, capture_output=True, text=True,
                          timeout=120)
    return _ids(done.stdout.splitlines())


def _sync_killed(url: str, cache: str, env: dict, after_s: float) -> set:
    """Track 300 with the service down, then kill a sync mid-delivery (slow service)."""
    script = textwrap.dedent("""
        import sys, json
        from pattern_track import Tracker
        t = Tracker(sys.argv[1], cache_dir=sys.argv[2], handoff=False)
        print(json.dumps([t.track("pattern_created", pattern_id=f"s{i}", pattern_data={"code": "x"})
                          for i in range(300)]))
        t.close(timeout=0)
    """)
    down = "http://127.0.0.1:9"
    done = subprocess.run([PYTHON, "-c", script, down, cache], env=env, capture_output=True,
                          text=True, timeout=60)
    tracked = _ids(done.stdout.splitlines())
    _move_store(cache, down, url)
    sync = subprocess.Popen([PYTHON, "-m", "pattern_track", "sync", "--timeout", "30"],
                            env=dict(env, INTELLIGENCE_SERVICE_URL=url, PATTERN_CACHE_DIR=cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after_s)  # scenario timing: kill the sync somewhere in its delivery
    sync.send_signal(random.choice((signal.SIGTERM, signal.SIGKILL)))
    sync.wait(30)
    return tracked


def _move_store(cache: str, old_url: str, new_url: str) -> None:
    """Make the events tracked for ``old_url`` wait for ``new_url``: each service has its
    own store in the cache directory and a sync for ``new_url`` reads only its own. The
    tracking process has ended and started no drainer (``handoff=False``): nothing is open."""
    from pattern_track.store.services import INFO, record, service_dir

    target = service_dir(cache, new_url)
    os.rename(service_dir(cache, old_url), target)
    os.remove(os.path.join(target, INFO))
    record(target, new_url)


def _settle_and_count(b: Any, cache: str, env: dict, tracked: set) -> Counter:
    """Stop the detached drainers, run one sync, then count tracked, delivered, lost
    (neither delivered nor kept) and duplicates (deliveries of an id past the first)."""
    from tests.helpers import kept_event_ids, kill_drainers

    kill_drainers(b.root)
    subprocess.run([PYTHON, "-m", "pattern_track", "sync", "--timeout", "120"], capture_output=True, timeout=240,
                   env=dict(env, INTELLIGENCE_SERVICE_URL=b.collector.url, PATTERN_CACHE_DIR=cache))
    kill_drainers(b.root)
    delivered = Counter(e["pattern_data"]["event_id"] for e in b.collector.events())
    return Counter(tracked=len(tracked), delivered=len(set(delivered) & tracked),
                   lost=len(tracked - set(delivered) - kept_event_ids(cache)),
                   duplicates=sum(n - 1 for n in delivered.values() if n > 1))


def bench_kill(b: Any) -> None:
    runs = b.size["kill_runs"]
    scenarios = [
        ("SIGTERM while tracking (service slow)",
         lambda u, c, e: _killed(u, c, e, "sigterm", random.uniform(0.2, 0.8))),
        ("SIGKILL while tracking (service slow)",
         lambda u, c, e: _killed(u, c, e, "sigkill", random.uniform(0.2, 0.8))),
        ("os._exit while tracking (service slow)", lambda u, c, e: _killed(u, c, e, "exit", 0.0)),
        ("8 processes SIGTERMed at once (service slow)",
         lambda u, c, e: _killed(u, c, e, "sigterm", random.uniform(0.3, 0.8), processes=8)),
        ("Pool(3), fork, `with` (terminate)", lambda u, c, e: _pool(u, c, e, "fork")),
        ("Pool(3), spawn, `with` (terminate)", lambda u, c, e: _pool(u, c, e, "spawn")),
        ("sync SIGTERMed/SIGKILLed mid-delivery", lambda u, c, e: _sync_killed(u, c, e, random.uniform(0.1, 0.5))),
    ]
    rows = []
    for name, scenario in scenarios:
        totals = Counter()
        for run in range(runs):
            cache = b.fresh_dir(f"kill-{len(rows)}-{run}")
            b.collector.reset()
            b.collector.fault("slow", delay_s=0.05)
            env = b.env(cache)
            try:
                tracked = scenario(b.collector.url, cache, env)
            finally:
                b.collector.fault("none")
            totals.update(_settle_and_count(b, cache, env, tracked))
        rows.append({"scenario": name, "runs": runs, **totals,
                     "duplicate_pct": 100.0 * totals["duplicates"] / max(totals["tracked"], 1)})
    by_scenario = {row["scenario"]: {k: v for k, v in row.items() if k != "scenario"} for row in rows}
    lost = sum(r["lost"] for r in rows)
    dup = sum(r["duplicates"] for r in rows)
    tracked = sum(r["tracked"] for r in rows)
    b.results["kill"] = {"scenarios": by_scenario, "lost": lost, "duplicates": dup, "tracked": tracked,
                         "duplicate_pct": 100.0 * dup / max(tracked, 1)}
    b.check("kill matrix: events lost", lost, "<=", 0, "ev")
    b.check("kill matrix: duplicates", 100.0 * dup / max(tracked, 1), "<=", 1.0, "%")


def report_kill(r: dict) -> list[str]:
    header = ["scenario", "runs", "tracked", "delivered", "lost", "duplicates", "dup %"]
    rows = [[name, x["runs"], x["tracked"], x["delivered"], x["lost"], x["duplicates"],
             f"{x['duplicate_pct']:.2f}"] for name, x in r["scenarios"].items()]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["8. kill matrix: killed at random points, then one `pattern-track sync` "
             "(target: 0 lost, duplicates <= 1 %)"]

    def line(cells: list) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(line(row))
    return lines


CONTENDER = textwrap.dedent("""
    import sys, json
    from pattern_track import Tracker
    url, cache, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    t = Tracker(url, cache_dir=cache, batch_size=50)
    ids = [t.track("pattern_created", pattern_id=f"{tag}-{i}", pattern_data={"code": "x"}) for i in range(n)]
    t.close(timeout=2)
    print(json.dumps(ids))
""")


def bench_contention(b: Any) -> None:
    """3 trackers and 2 rival syncs on 5,000 events (slow service): duplicates and losses."""
    runs, n = b.size["contention_runs"], 5000
    totals = Counter()
    for run in range(runs):
        cache = b.fresh_dir(f"contention-{run}")
        b.collector.reset()
        b.collector.fault("slow", delay_s=0.01)
        env = b.env(cache)
        sync_env = dict(env, INTELLIGENCE_SERVICE_URL=b.collector.url, PATTERN_CACHE_DIR=cache)
        try:
            trackers = [subprocess.Popen([PYTHON, "-c", CONTENDER, b.collector.url, cache, str(n // 3 + (i < n % 3)),
                                          f"r{run}t{i}"], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True) for i in range(3)]
            syncs = [subprocess.Popen([PYTHON, "-m", "pattern_track", "sync", "--timeout", "60"], env=sync_env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
            tracked = set()
            for proc in trackers:
                out, _ = proc.communicate(timeout=180)
                tracked |= _ids(out.splitlines())
            for proc in syncs:
                proc.wait(180)
        finally:
            b.collector.fault("none")
        totals.update(_settle_and_count(b, cache, env, tracked))
    pct = 100.0 * totals["duplicates"] / max(totals["tracked"], 1)
    b.results["contention"] = {"runs": runs, **totals, "duplicate_pct": pct}
    b.check("3 trackers + 2 syncs: events lost", totals["lost"], "<=", 0, "ev")
    b.check("3 trackers + 2 syncs: duplicates", pct, "<=", 1.0, "%")


def report_contention(r: dict) -> list[str]:
    return [f"10. 3 trackers + 2 rival syncs on 5,000 events, {r['runs']} runs: {r['tracked']} tracked, "
            f"{r['lost']} lost, {r['duplicates']} duplicates ({r['duplicate_pct']:.2f} %)", ""]
