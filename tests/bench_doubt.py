"""Duplicates when the service's answer never came back (issue 16).

A script tracks a mix of events (creations, modifications of them, applications: one in
four) and calls ``close()`` against a collector that stores each request and then fails
to tell: it answers ``late`` (2 s, after ``close()`` gave up), its 200 is cut short
(``truncate``), or it resets the connection (``reset``). The detached drainer the script
made sure of delivers the rest, asking the read route before resending. Once every event
arrived and the drainer ended, the figure is the share of events stored twice (all
events, and node-creating ones alone).
"""

from __future__ import annotations

import collections
import subprocess
import sys
from typing import Any

PYTHON = sys.executable

SCENARIOS = (
    ("late answer (2 s after close() gave up)", "late", {"delay_s": 2.0}, False),
    ("200 cut short", "truncate", {"at_bytes": 20}, True),
    ("connection reset after storing", "reset", {}, True),
)


def _arrivals(collector: Any) -> tuple[collections.Counter, dict]:
    events = collector.events()
    return (collections.Counter(e["pattern_data"]["event_id"] for e in events),
            {e["pattern_data"]["event_id"]: e["event_type"] for e in events})


def bench_doubt(b: Any) -> None:
    from pattern_track.collector import Collector
    from pattern_track.process.launcher import drainer_running
    from tests.helpers import eventually, kill_drainers, store_dir
    from tests.integration.test_in_doubt import SCRIPT

    n, runs = 200, (1 if b.quick else 3)  # 200: the script; 1 % of it is 2 events
    results = {}
    for label, fault, params, heal in SCENARIOS:
        totals = collections.Counter()
        for run in range(runs):
            cache = b.fresh_dir(f"doubt-{fault}-{run}")
            with Collector() as collector:
                collector.set_fault(fault, **params)
                subprocess.run([PYTHON, "-c", SCRIPT, collector.url, cache, str(n)], env=b.env(cache),
                               capture_output=True, timeout=120)
                if heal:
                    collector.set_fault("none")
                eventually(lambda collector=collector: len(_arrivals(collector)[0]) >= n, 120, interval=0.1)
                store = store_dir(cache, collector.url)
                eventually(lambda store=store: not drainer_running(store), 60, interval=0.1)
                kill_drainers(cache)
                counts, kinds = _arrivals(collector)
                totals.update(events=n, arrived=len(counts),
                              duplicates=sum(v - 1 for v in counts.values()),
                              node_events=sum(1 for k in counts if kinds[k] != "pattern_applied"),
                              node_duplicates=sum(v - 1 for k, v in counts.items() if kinds[k] != "pattern_applied"),
                              reads=collector.state()["requests"].get("evolution", {}).get("200", 0)
                              + collector.state()["requests"].get("evolution", {}).get("404", 0))
        pct = 100.0 * totals["duplicates"] / max(totals["events"], 1)
        node_pct = 100.0 * totals["node_duplicates"] / max(totals["node_events"], 1)
        results[fault] = {"runs": runs, **totals, "duplicate_pct": pct, "node_duplicate_pct": node_pct}
        b.check(f"{label}: events lost", totals["events"] - totals["arrived"], "<=", 0, "ev")
        b.check(f"{label}: duplicates", pct, "<=", 1.0, "%")
        b.check(f"{label}: node-creating duplicates", totals["node_duplicates"], "<=", 0, "ev")
    b.results["doubt"] = results


def report_doubt(r: dict) -> list[str]:
    lines = ["11. answers that never came back: a script of mixed events (1 in 4 an application) calls close(); "
             "the collector stores, then answers late, cuts its 200 short or resets (target: duplicates <= 1 %, "
             "node-creating 0)"]
    labels = {fault: label for label, fault, _, _ in SCENARIOS}
    for fault, v in r.items():
        lines.append(f"   {labels.get(fault, fault)}: {v['arrived']}/{v['events']} arrived in {v['runs']} runs, "
                     f"{v['duplicates']} stored twice ({v['duplicate_pct']:.2f} %), node-creating "
                     f"{v['node_duplicates']} of {v['node_events']} ({v['node_duplicate_pct']:.2f} %), "
                     f"{v['reads']} reads of the evolution route")
    return [*lines, ""]
