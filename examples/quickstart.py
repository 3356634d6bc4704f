"""pattern_track in one minute: track a lineage chain, lose the service, get it all delivered.

Runs against the bundled reference collector on a free loopback port, with a throwaway
cache directory (removed at the end), so it touches nothing of yours:

    python examples/quickstart.py
"""

from __future__ import annotations

import json
import tempfile
import threading
import time

from pattern_track import Tracker
from pattern_track.collector import Collector


def say(text: str) -> None:
    print(text, flush=True)


def wait_until(predicate, timeout_s: float) -> bool:
    """Poll a condition a few times a second (a demo; the tests wait on events instead)."""
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        tick.wait(0.1)
    return predicate()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pattern_track-demo-") as cache:
        return demo(cache)


def demo(cache: str) -> int:
    collector = Collector().start()
    port = collector.port
    say(f"1. reference collector listening on {collector.url}; cache in {cache}")

    # Short timers so the demo takes seconds; the defaults are minutes.
    tracker = Tracker(collector.url, cache_dir=cache, breaker_failure_threshold=3,
                      breaker_reset_timeout_s=1.0, health_check_interval_s=0.5,
                      backoff_base_s=0.1, backoff_max_s=0.5, drain_interval_s=0.1, connect_timeout_s=0.3)
    ctx = {"language": "python", "file_path": "src/retry.py", "tool_name": "Write"}
    v1 = tracker.track_pattern_creation("def retry(f):\n    return f()\n", ctx)
    v2 = tracker.track_pattern_modification(v1, "def retry(f, n=3):\n    for _ in range(n):\n        return f()\n",
                                            ctx, reason="add attempts")
    tracker.track_pattern_application(v2, {"file_path": "src/client.py", "language": "python"})
    tracker.flush(5)
    say(f"2. tracked a lineage chain {v1} -> {v2} and applied it: "
        f"{tracker.stats()['sent']} events delivered")

    collector.stop()
    say("3. service DOWN")
    held = [tracker.track_pattern_creation(f"LIMIT_{i} = {i}\n", ctx) for i in range(10)]
    tracker.flush(5)
    wait_until(lambda: tracker.stats()["breaker"]["state"] == "open", 10)
    stats = tracker.stats()
    say(f"   tracked {len(held)} more events: track() returned at once each time; "
        f"{stats['pending']} held in the outbox, breaker {stats['breaker']['state']} "
        f"after {stats['breaker']['failure_count']} failed attempts")

    collector = Collector(port=port).start()
    say("4. service back UP on the same port; the drainer probes, closes the breaker and replays")
    delivered = wait_until(lambda: tracker.stats()["pending"] == 0 and len(collector.events()) >= 10, 20)
    stats = tracker.stats()
    kinds = [e["event_type"] for e in collector.events()]
    say(f"   {'all' if delivered else 'NOT all'} held events delivered: {len(kinds)} stored after the restart, "
        f"breaker {stats['breaker']['state']}, outbox {stats['pending']}")

    tracker.close()
    outcomes = stats["outcomes"]
    say("5. every accepted event has exactly one outcome:")
    say(f"   accepted {outcomes['accepted']} = sent at once {outcomes['delivered']}"
        f" + kept in the outbox {outcomes['outboxed']} + dead-lettered {outcomes['dead_lettered']}"
        f" + dropped {outcomes['dropped_after_accept']}")
    # Kept events are delivered by whichever drainer holds the lease: this process's thread,
    # or the detached drainer it made sure of when it first tracked (pattern-track drain).
    by_us = stats["replayed"]
    say(f"   of the {outcomes['outboxed']} kept, {len(kinds)} arrived after the recovery ({by_us} sent by this "
        f"process's drainer thread, {len(kinds) - by_us} by the detached drainer): "
        f"{outcomes['delivered'] + len(kinds)} delivered in all, {stats['pending']} waiting")
    say("final stats: " + json.dumps({k: stats[k] for k in ("accepted", "sent", "pending", "dead_letter", "dropped", "breaker")}))
    collector.stop()
    return 0 if delivered else 1


if __name__ == "__main__":
    raise SystemExit(main())
