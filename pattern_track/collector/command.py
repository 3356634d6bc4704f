"""``main``: serve a collector from the command line until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading

from .contract import DEFAULT_PORT
from .faults import FAULT_MODES
from .server import Collector

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Serve a collector until SIGINT or SIGTERM, after printing its URL on one line."""
    parser = argparse.ArgumentParser(prog="python -m pattern_track.collector",
                                     description="A reference collector that answers like the pattern intelligence service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", metavar="PATH", help="keep nodes and events in this SQLite file")
    parser.add_argument("--rate-limit", type=int, metavar="N", help="requests per 60 s for all clients")
    parser.add_argument("--fault", choices=FAULT_MODES, default="none", help="start in this fault mode")
    parser.add_argument("--no-batch-route", action="store_true", help="answer like a service without the batch route")
    args = parser.parse_args(argv)
    done = threading.Event()
    try:
        collector = Collector(args.host, args.port, db_path=args.db, rate_limit=args.rate_limit,
                              batch_route=not args.no_batch_route).start()
    except (OSError, sqlite3.Error) as exc:
        print(f"pattern_track collector: cannot start on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    with collector:
        collector.set_fault(args.fault)
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(signum, lambda *_: done.set())
            except ValueError:  # not the main thread: whoever called us stops us otherwise
                pass
        print(f"pattern_track collector listening on {collector.url}", flush=True)
        while not done.wait(0.5):
            pass
    return 0
