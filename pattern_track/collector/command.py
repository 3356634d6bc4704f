"""``main``: serve a collector from the command line until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading

from .contract import DEFAULT_PORT, SERVICE_RATE_LIMIT
from .faults import FAULT_HELP, FAULT_MODES, FAULTS
from .server import CONTROL_ROUTES, Collector

__all__ = ["main"]


_DESCRIPTION = """\
A reference collector that answers like the pattern intelligence service
(wire-contract.md), for development and tests: standard library only, in memory
or on SQLite. It prints its URL, then serves until SIGINT or SIGTERM."""


def _epilog() -> str:
    """The fault modes and the control routes, one line each."""
    width = max(map(len, FAULT_MODES))
    lines = ["fault modes [parameters, set through POST /_collector/fault]:"]
    for mode in FAULT_MODES:
        params = ", ".join(f"{name}={value!r}" for name, value in FAULTS[mode].items())
        lines.append(f"  {mode:<{width}}  {FAULT_HELP[mode]}" + (f" [{params}]" if params else ""))
    width = max(map(len, CONTROL_ROUTES))
    lines += ["", "inspection and control routes:"]
    lines += [f"  {route:<{width}}  {text}" for route, text in CONTROL_ROUTES.items()]
    lines += ["", "service routes (under /api/pattern-traceability):",
              "  POST /lineage/track, POST /lineage/track/batch     store one event, a batch (rate-limited)",
              "  GET  /health                                        health (not rate-limited)",
              "  GET  /lineage/{pattern_id}/evolution                its nodes and edges, one hop (not rate-limited)",
              "  GET  /lineage/{pattern_id}?query_type=descendants   direct children (ancestry, the default, 500s)",
              "", "example: curl -X POST localhost:8053/_collector/fault -d '{\"mode\": \"error\", \"status\": 503}'"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, *, prog: str = "pattern-track serve") -> int:
    """Serve a collector until SIGINT or SIGTERM, after printing its URL on one line.

    ``prog`` names the command in ``--help``: ``pattern-track serve`` calls this with its
    own arguments, ``python -m pattern_track.collector`` passes its name.
    """
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION, epilog=_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port to listen on, 0 for any free one (default: %(default)s, the service's)")
    parser.add_argument("--db", metavar="PATH", help="keep nodes and events in this SQLite file (default: memory)")
    parser.add_argument("--rate-limit", type=int, metavar="N",
                        help="answer 429 past N requests per --rate-window to the track routes and the lineage "
                             "query (not health or evolution), shared by all clients; health reports N as "
                             "max_requests_per_window (default: none enforced, while health reports the real "
                             f"service's {SERVICE_RATE_LIMIT})")
    parser.add_argument("--rate-window", type=float, metavar="SECONDS", default=60.0,
                        help="the sliding window of --rate-limit, in seconds (default: 60, the service's)")
    parser.add_argument("--fault", choices=FAULT_MODES, default="none", metavar="MODE",
                        help="start in this fault mode, with its default parameters (default: %(default)s)")
    parser.add_argument("--no-batch-route", action="store_true", help="answer like a service without the batch route")
    args = parser.parse_args(argv)
    done = threading.Event()
    try:
        collector = Collector(args.host, args.port, db_path=args.db, rate_limit=args.rate_limit,
                              window_s=args.rate_window, batch_route=not args.no_batch_route).start()
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
