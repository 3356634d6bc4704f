"""Read back what the service stored, through its evolution route (wire-contract.md).

``GET /api/pattern-traceability/lineage/{pattern_id}/evolution`` answers, one hop, the
nodes of a pattern id (every version) and every edge into or out of them. On it:

- ``evolution(get, pattern_id, *, timeout_s)``: that answer's ``data``, None when
  nothing is stored, ``ReadUnknown`` when the service's answer does not tell;
- ``is_stored(event, doc)``: whether a node-creating event (``NODE_EVENTS``) is already
  stored, judged from the evolution ``doc`` of its pattern id; this is what a replay
  asks before resending an event the service may have committed after we gave up;
- ``walk(get, pattern_id, *, depth, timeout_s)``: ancestors and descendants, breadth
  first, a bounded number of requests.

Standard library only: every function takes ``get(path, timeout_s) -> answer``, where
``answer`` has ``status`` (int) and ``body`` (bytes), such as ``Transport.get``; whatever
``get`` raises (our ``NoAnswer``, with its ``reason``) means no answer. Never prints;
logs carry reasons, statuses and sizes, never what was stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from .. import logs
from ..errors import PatternTrackError
from .readwalk import Walk

__all__ = ["DEFAULT_MAX_REQUESTS", "EVOLUTION_PATH", "NODE_EVENTS", "REASONS", "ReadUnknown", "evolution",
           "is_stored", "walk"]

log = logs.get(__name__)

#: The route, with ``{}`` for the URL-quoted pattern id.
EVOLUTION_PATH = "/api/pattern-traceability/lineage/{}/evolution"
#: Event types that create a node (``(pattern_id, pattern_version)``), so ``is_stored`` can tell.
#: ``pattern_applied`` and ``pattern_deprecated`` add only an event row, which no read shows.
NODE_EVENTS = frozenset({"pattern_created", "pattern_validated", "pattern_modified", "pattern_forked",
                         "pattern_merged"})
#: ``walk``'s default bound on requests, one per pattern id fetched.
DEFAULT_MAX_REQUESTS = 200
#: ``ReadUnknown.reason`` values, each with what it means.
REASONS = {
    "no_answer": "get raised: no HTTP answer (refused, timed out, reset, cut...)",
    "server_error": "a 5xx (503: no database pool; 500: the query failed)",
    "rate_limited": "a 429 (the route itself is not rate-limited: a proxy's?)",
    "no_route": "a 404 that is not the route's own: a service without the route, or an id it cannot route",
    "unexpected_status": "any other status (3xx, 4xx)",
    "unreadable": "a 200 whose body is not the route's JSON document",
}

_DEFAULT_VERSION = "1.0.0"  # what the service stores when an event has no pattern_version
_CREATIONS = ("pattern_created", "pattern_validated")
_FIRST_PARENT_ONLY = ("pattern_modified", "pattern_forked")
_DETAIL_CHARS = 200  # of the service's error text kept in a ReadUnknown


class _Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


Get = Callable[[str, float], _Answer]


class ReadUnknown(PatternTrackError):
    """The service's answer does not tell what it stored.

    ``reason`` is one of ``REASONS``; ``status`` the HTTP status (None without an
    answer); ``detail`` a short text for people (the transport's reason, or the
    service's error, cut to 200 characters).
    """

    def __init__(self, reason: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.status = reason, detail, status


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def _error_text(body: bytes) -> str:
    """The service's error text from an error answer's body, short; else its size."""
    doc = _json(body)
    text = doc.get("error") or doc.get("detail") if isinstance(doc, dict) else None
    return str(text)[:_DETAIL_CHARS] if text else f"{len(body)} bytes"


def _records(data: Mapping[str, Any], name: str, fields: tuple[str, ...]) -> bool:
    """Whether ``data[name]`` is a list of objects each with these fields as strings."""
    rows = data.get(name)
    return isinstance(rows, list) and all(
        isinstance(row, dict) and all(isinstance(row.get(f), str) for f in fields) for row in rows)


def evolution(get: Get, pattern_id: str, *, timeout_s: float) -> dict | None:
    """What the service stored for ``pattern_id``: the evolution route's ``data``, one hop.

    >>> evolution(transport.get, "python-code-226225de545b", timeout_s=5.0)  # doctest: +SKIP
    {"pattern_id": ..., "total_versions": 1, "evolution_nodes": [{node_id, pattern_id,
     pattern_name, pattern_type, version, generation, created_at, metadata}],
     "evolution_edges": [{edge_id, source_node_id, target_node_id, source_pattern_id,
     target_pattern_id, source_version, target_version, edge_type, transformation_type,
     edge_weight, created_at, metadata}]}

    ``created_at`` is ISO 8601 text with an offset, ``metadata`` a JSON *string*.
    ``timeout_s`` (seconds) is handed to ``get`` for the one request.

    Returns None on the route's own 404 (nothing stored for that id). Raises
    ``ReadUnknown`` when the answer does not tell (``REASONS``: no answer, 5xx, 429, a 404
    without the route's body, any other status, an unreadable body), and ``ValueError``
    for an empty or non-string ``pattern_id``.
    """
    if not isinstance(pattern_id, str) or not pattern_id:
        raise ValueError("pattern_id must be a non-empty string")
    try:
        answer = get(EVOLUTION_PATH.format(quote(pattern_id, safe="")), timeout_s)
    except Exception as exc:  # whatever get raises is no answer; NoAnswer says why
        reason = getattr(exc, "reason", None) or type(exc).__name__
        log.debug("evolution read got no answer (%s)", reason)
        raise ReadUnknown("no_answer", f"{reason}: {exc}"[:_DETAIL_CHARS]) from exc
    status, body = answer.status, answer.body
    doc = _json(body) if status in (200, 404) else None
    if status == 404:
        if isinstance(doc, dict) and doc.get("success") is False:
            return None
        raise _unknown("no_route", "404 " + _error_text(body), status, body)
    if status == 429:
        raise _unknown("rate_limited", "429 " + _error_text(body), status, body)
    if 500 <= status <= 599:
        raise _unknown("server_error", f"{status} {_error_text(body)}", status, body)
    if status != 200:
        raise _unknown("unexpected_status", f"{status} {_error_text(body)}", status, body)
    data = doc.get("data") if isinstance(doc, dict) and doc.get("success") is True else None
    if not (isinstance(data, dict) and data.get("pattern_id") == pattern_id
            and _records(data, "evolution_nodes", ("node_id", "pattern_id", "version"))
            and _records(data, "evolution_edges", ("edge_id", "source_pattern_id", "target_pattern_id",
                                                   "target_version"))):
        raise _unknown("unreadable", f"200 without the route's document ({len(body)} bytes)", status, body)
    return data


def _unknown(reason: str, detail: str, status: int, body: bytes) -> ReadUnknown:
    log.debug("evolution read unknown: %s (status %d, %d bytes)", reason, status, len(body))
    return ReadUnknown(reason, detail, status=status)


def is_stored(event: Mapping[str, Any], doc: Mapping[str, Any] | None) -> bool:
    """Whether the service already stored this node-creating wire event.

    ``event`` is a wire event (``event_type``, ``pattern_id``, ``pattern_version``,
    ``parent_pattern_ids``); ``doc`` what ``evolution`` returned for its ``pattern_id``
    (None: nothing stored). Stored means the node ``(pattern_id, pattern_version)``
    exists (a missing version is the service's ``"1.0.0"``) and, for
    ``pattern_modified`` / ``pattern_forked``, an edge from ``parent_pattern_ids[0]`` into
    that version; for ``pattern_merged``, one from every parent. ``pattern_created`` and
    ``pattern_validated``: the node suffices (a duplicate creation stores nothing new).

    Raises ``ValueError`` for an event type outside ``NODE_EVENTS``: an application or a
    deprecation creates no node, so no read can tell whether it was stored, and a bool
    would be a guess; likewise for a derivation without parents (never valid) or a
    ``doc`` of another pattern id.
    """
    kind, pattern_id = event.get("event_type"), event.get("pattern_id")
    if kind not in NODE_EVENTS:
        raise ValueError(f"{kind!r} creates no node: a read cannot tell whether it was stored")
    parents = list(event.get("parent_pattern_ids") or [])
    if kind not in _CREATIONS and not parents:
        raise ValueError(f"{kind} without parent_pattern_ids is not a valid event")
    if doc is None:
        return False
    if doc.get("pattern_id") != pattern_id:
        raise ValueError("doc is the evolution of another pattern id")
    version = event.get("pattern_version") or _DEFAULT_VERSION
    if not any(node["pattern_id"] == pattern_id and node["version"] == version for node in doc["evolution_nodes"]):
        return False
    if kind in _CREATIONS:
        return True
    into = {edge["source_pattern_id"] for edge in doc["evolution_edges"]
            if edge["target_pattern_id"] == pattern_id and edge["target_version"] == version}
    return set(parents[:1] if kind in _FIRST_PARENT_ONLY else parents) <= into


def walk(get: Get, pattern_id: str, *, depth: int, timeout_s: float, max_requests: int = DEFAULT_MAX_REQUESTS,
         clock: Callable[[], float] = time.monotonic) -> dict | None:
    """Ancestors and descendants of ``pattern_id``, breadth first over evolution answers.

    Ancestors are followed through edges whose target is a visited id, descendants
    through edges whose source is, each at most ``depth`` hops from ``pattern_id``
    (0: the pattern alone); each id is fetched once, ``max_requests`` at most, all within
    ``timeout_s`` seconds in all (each request gets what is left; ``clock`` is monotonic
    seconds). Returns::

        {"pattern_id": str, "depth": int, "requests": int,
         "nodes": [evolution node, ...],   # every version of each id read, by node_id, once
         "edges": [evolution edge, ...],   # the edges walked, by edge_id, once
         "unreachable": {pattern_id: reason},  # read, but unknown: a REASONS key, or "not_found"
         "truncated": {pattern_id: why}}       # seen on an edge, not read: "depth", "max_requests", "deadline"

    An edge is in ``edges`` only when both its ends were read. Returns None when
    ``pattern_id`` itself is not stored; raises ``ReadUnknown`` when its own answer does
    not tell (later ids go to ``unreachable`` instead), ``ValueError`` for a negative
    ``depth``, ``max_requests`` < 1 or ``timeout_s`` <= 0.
    """
    if depth < 0 or max_requests < 1 or not timeout_s > 0:
        raise ValueError(f"walk needs depth >= 0, max_requests >= 1, timeout_s > 0; got {depth}, {max_requests}, "
                         f"{timeout_s}")
    deadline = clock() + timeout_s
    first = evolution(get, pattern_id, timeout_s=timeout_s)
    if first is None:
        return None

    def read(pid: str, left_s: float) -> tuple[dict | None, str | None]:
        try:
            doc = evolution(get, pid, timeout_s=left_s)
        except ReadUnknown as exc:
            return None, exc.reason
        return doc, None if doc is not None else "not_found"  # an edge names it, yet nothing is stored

    state = Walk(read, deadline=deadline, max_requests=max_requests, clock=clock, first={pattern_id: first})
    for upward in (True, False):
        state.direction(pattern_id, depth, upward=upward)
    return {"pattern_id": pattern_id, "depth": depth, "requests": state.requests,
            "nodes": list(state.nodes.values()), "edges": list(state.edges.values()),
            "unreachable": state.unreachable,
            "truncated": {pid: why for pid, why in state.truncated.items()
                          if pid not in state.docs and pid not in state.unreachable}}
