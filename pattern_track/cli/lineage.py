"""``pattern-track lineage PATTERN_ID``: what the service recorded about a pattern.

It walks the service's evolution route (``delivery.readback.walk``) from the pattern to
its ancestors and descendants, and prints them as two trees, or the walk as JSON with
``--json``. It opens no outbox and starts no thread or process: the transport runs
without its watchdog thread, and ``--timeout`` is kept by a ``SIGALRM`` that aborts the
request in flight (on the main thread, where signals are delivered; elsewhere the
per-request timeouts alone bound it).
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import threading

from .common import CliError, _config, _emit

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator
    from typing import Any

__all__ = ["DEFAULT_DEPTH", "DEFAULT_TIMEOUT_S", "cmd_lineage", "tree_lines"]

#: Hops followed each way unless ``--depth`` says otherwise.
DEFAULT_DEPTH = 10
#: Seconds for the whole walk unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT_S = 30.0

#: ``ReadUnknown.reason`` -> what the error line says.
_SAID = {"no_answer": "no answer", "server_error": "the service failed", "rate_limited": "rate limited",
         "no_route": "no route for it (a service without the evolution route, or an id holding '/')",
         "unexpected_status": "an unexpected answer", "unreadable": "an answer that is not the route's JSON"}

DESCRIPTION = """\
Show what the service recorded about PATTERN_ID: its versions, then its ancestors and
descendants as trees, read from the service's evolution route (GET .../lineage/{id}/evolution,
one request per pattern, each pattern read once). Each tree line is a pattern: its id and
version, the edge and transformation type that links it to the line above, and when the
edge was recorded. --json prints the walk instead: {"nodes": [...], "edges": [...]} with
each edge's source_pattern_id and target_pattern_id, plus the ids that could not be read
("unreachable") or were not walked ("truncated": depth, request bound or --timeout).
Reads only: no outbox is opened, nothing is sent."""


def cmd_lineage(args: argparse.Namespace) -> int:
    from ..delivery import readback
    from ..delivery.transport import Transport

    config = _config(args)
    transport = Transport(config, watchdog=False)
    expired = threading.Event()

    def expire() -> None:  # SIGALRM, on this thread: cut the request in flight
        expired.set()
        transport.abort()

    try:
        with _alarm(args.timeout, expire):
            doc = readback.walk(transport.get, args.pattern_id, depth=args.depth, timeout_s=args.timeout)
    except readback.ReadUnknown as exc:
        said = (f"no complete answer within --timeout {args.timeout:g} s" if expired.is_set()
                else f"{_SAID.get(exc.reason, exc.reason)} ({exc.detail})")
        raise CliError(f"cannot read what {config.base_url} stored about {args.pattern_id}: {said}") from None
    finally:
        transport.close()
    if doc is None:
        raise CliError(f"{args.pattern_id} is not stored at {config.base_url} (the evolution route has no node for it)")
    _emit(args, doc, tree_lines(doc))
    return 0


@contextlib.contextmanager
def _alarm(seconds: float, abort: Callable[[], None]) -> Iterator[None]:
    """Call ``abort`` after ``seconds`` unless the block ends first (main thread, POSIX only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: abort())
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _when(text: Any) -> str:
    """ISO 8601 with an offset, to the second; anything else as it came."""
    try:
        return datetime.datetime.fromisoformat(str(text)).isoformat(timespec="seconds")
    except ValueError:
        return str(text)


def tree_lines(doc: dict) -> list[str]:
    """The walk ``doc`` (``readback.walk``) as lines: the pattern's versions, then two trees.

    A pattern reached twice is expanded once (later lines say "see above"); edges
    between versions of one id are listed under its versions, not in the trees.
    """
    root = doc["pattern_id"]
    own = sorted((n for n in doc["nodes"] if n["pattern_id"] == root),
                 key=lambda n: (n.get("generation") or 0, str(n.get("created_at"))))
    lines = [f"{root}: {len(own)} version{'s' if len(own) != 1 else ''} stored"]
    lines += [f"  {n['version']}  generation {n.get('generation')}  created {_when(n.get('created_at'))}" for n in own]
    lines += [f"  {e.get('source_version')} -> {e['target_version']}  {e.get('edge_type')}/"
              f"{e.get('transformation_type')}  {_when(e.get('created_at'))}" for e in doc["edges"]
              if e["source_pattern_id"] == e["target_pattern_id"] == root]
    hops = f"up to {doc['depth']} hop{'s' if doc['depth'] != 1 else ''}"
    for title, upward in ((f"ancestors ({hops}):", True), (f"descendants ({hops}):", False)):
        lines.append(title)
        lines += _branch(doc, upward) or ["  (none recorded)"]
    notes = [f"  {pid}: could not be read ({why})" for pid, why in sorted(doc["unreachable"].items())]
    notes += [f"  {pid}: not walked ({why})" for pid, why in sorted(doc["truncated"].items())]
    return lines + (["incomplete:", *notes] if notes else [])


def _branch(doc: dict, upward: bool) -> list[str]:
    """One tree, depth first, iteratively (a long chain must not hit the recursion limit)."""
    near, far, version, link = (("target_pattern_id", "source_pattern_id", "source_version", "into") if upward
                                else ("source_pattern_id", "target_pattern_id", "target_version", "from"))
    other_version = "target_version" if upward else "source_version"
    children: dict[str, list[dict]] = {}
    for edge in sorted(doc["edges"], key=lambda e: (str(e.get("created_at")), e["edge_id"])):
        if edge["source_pattern_id"] != edge["target_pattern_id"]:
            children.setdefault(edge[near], []).append(edge)
    lines: list[str] = []
    expanded = {doc["pattern_id"]}
    stack = [(edge, 1) for edge in reversed(children.get(doc["pattern_id"], []))]
    while stack:
        edge, level = stack.pop()
        pid = edge[far]
        line = (f"{'  ' * level}{pid} {edge.get(version)}  {edge.get('edge_type')}/{edge.get('transformation_type')}"
                f"  {link} {edge.get(other_version)}  {_when(edge.get('created_at'))}")
        if pid in expanded:
            line += "  (see above)"
        else:
            expanded.add(pid)
            stack += [(child, level + 1) for child in reversed(children.get(pid, []))]
        lines.append(line)
    return lines
