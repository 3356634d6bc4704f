"""A reference collector that answers like the pattern intelligence service.

Tests need a service that behaves like the real one in ``wire-contract.md``: the same
routes, status codes and body shapes, odd ones included (a duplicate is a 200, a lost
database is a 400 for one event but a 200 for a batch, ``/lineage/track-batch`` is a 405,
a 429 has no ``Retry-After``). This is that service, in memory or on SQLite, built on the
standard library alone and importing nothing else from ``pattern_track``, so it runs
anywhere: ``python -m pattern_track.collector --port 8053``.

Fault modes, switched at run time by ``Collector.set_fault(mode, **params)`` or
``POST /_collector/fault {"mode": ..., **params}``, act on the two track routes (health
only where said):

- ``none``: normal service.
- ``error(status=500, detail=None)``: ``{"detail"}`` with that status (503 and 504 carry
  the real service's texts).
- ``rate_limit(retry_after=None)``: 429, with ``Retry-After`` only when given.
- ``degraded``: health says degraded / database_unavailable; track routes answer 503.
- ``db_down``: health still says healthy but pool_size is 0; one event gets the transient
  400 ``ConnectionRefusedError``; a batch gets a 200 with every event failed.
- ``hang``: never answer (health too) until the mode changes, then 504 with nothing
  stored; ``stop()`` closes the connection instead.
- ``flaky(every=2)``: every ``every``-th track request answers 500.
- ``slow(delay_s=0.5)``: wait, then answer normally (health too).
- ``trickle(interval_s=1.0)``: headers at once, then one body byte per interval.
- ``redirect(location="/redirected")``: 307 to ``location``.
- ``html``: 200 with an HTML page (health too). ``empty``: 200 with an empty body.

Control routes: ``POST /_collector/fault``, ``GET /_collector/state``,
``GET /_collector/events``, ``POST /_collector/reset``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import logging
import re
import signal
import socket
import sqlite3
import sys
import threading
import time
import itertools
from os import urandom as os_urandom
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

__all__ = ["FAULT_MODES", "Collector", "main"]

logger = logging.getLogger(__name__)

API = "/api/pattern-traceability"
DEFAULT_PORT = 8053
#: Larger bodies get a 413; a batch of 1000 real events stays far below.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: What health reports as the budget when no rate limit is set (the real service's).
SERVICE_RATE_LIMIT = 1000
#: How often the accept loop looks for stop(); stop() waits up to this long.
_POLL_S = 0.01

EVENT_TYPES = ("pattern_created", "pattern_modified", "pattern_merged", "pattern_applied",
               "pattern_deprecated", "pattern_forked", "pattern_validated")
EDGE_TYPES = ("derived_from", "modified_from", "merged_from", "replaced_by", "inspired_by", "deprecated_by")
TRANSFORMATION_TYPES = ("refactor", "enhancement", "bugfix", "merge", "optimization", "simplification")
_CREATIONS = ("pattern_created", "pattern_validated")
_DERIVATIONS = ("pattern_modified", "pattern_forked")
#: varchar limits of the real tables: a longer value fails at INSERT, per event.
MAX_LENGTHS = {"pattern_id": 255, "pattern_name": 255, "pattern_type": 100, "pattern_version": 50,
               "tool_name": 255, "language": 50, "triggered_by": 100}
_NODE_FIELDS = ("pattern_id", "pattern_version", "pattern_name", "pattern_type", "language",
                "tool_name", "file_path", "pattern_data")

_REQUIRED = object()
#: The request model: field -> (JSON type, null allowed, default).
_FIELDS: dict[str, tuple[type, bool, Any]] = {
    "event_type": (str, False, _REQUIRED), "pattern_id": (str, False, _REQUIRED),
    "pattern_name": (str, False, ""), "pattern_type": (str, False, "code"),
    "pattern_version": (str, False, "1.0.0"), "tool_name": (str, True, None),
    "file_path": (str, True, None), "language": (str, True, "python"),
    "pattern_data": (dict, False, {}), "parent_pattern_ids": (list, False, []),
    "edge_type": (str, True, None), "transformation_type": (str, True, None),
    "reason": (str, True, None), "triggered_by": (str, False, "api"),
}
_TYPE_ERRORS = {str: ("string_type", "Input should be a valid string"),
                dict: ("dict_type", "Input should be a valid dictionary"),
                list: ("list_type", "Input should be a valid list")}
_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"

#: Fault mode -> its parameters with their defaults; any other parameter is refused.
_FAULTS: dict[str, dict[str, Any]] = {
    "none": {}, "error": {"status": 500, "detail": None}, "rate_limit": {"retry_after": None},
    "degraded": {}, "db_down": {}, "hang": {}, "flaky": {"every": 2}, "slow": {"delay_s": 0.5},
    "trickle": {"interval_s": 1.0}, "redirect": {"location": "/redirected"}, "html": {}, "empty": {},
}
FAULT_MODES = tuple(_FAULTS)
_PARAM_TYPES = {"status": int, "detail": str, "retry_after": str, "every": int,
                "delay_s": float, "interval_s": float, "location": str}
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_DETAILS = {500: "Internal Server Error", 503: "Database connection not available",
            504: "Tracking operation timed out"}
_DB_DOWN = ("[Errno 111] Connect call failed", "ConnectionRefusedError")
_HTML = b"<html><head><title>Sign in</title></head><body><h1>Please sign in</h1></body></html>"

#: (method, path, route). A path that matches under another method is a 405, as in FastAPI,
#: which is why POST /lineage/track-batch (matching GET /lineage/{pattern_id}) is a 405.
_ROUTES = [(method, re.compile(path), name) for method, path, name in [
    ("POST", API + "/lineage/track", "track"),
    ("POST", API + "/lineage/track/batch", "batch"),
    ("GET", API + "/health", "health"),
    ("GET", API + "/lineage/(?P<pattern_id>[^/]+)", "lineage"),
    ("POST", "/_collector/(?P<action>fault|reset)", "control"),
    ("GET", "/_collector/(?P<action>state|events)", "control"),
]]


@dataclasses.dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    trickle_s: float | None = None
    route: str = "unknown"


_ids = itertools.count(int.from_bytes(os_urandom(6), "big"))


def _new_id() -> str:
    """A unique id for answers (uuid4 costs more than the rest of storing an event)."""
    return f"{next(_ids):032x}"


def _json_reply(status: int, doc: Any, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(doc).encode(), headers=headers)


class _Answer(Exception):
    """Stop handling the request and answer ``status`` with the JSON ``doc``."""

    def __init__(self, status: int, doc: Any) -> None:
        super().__init__(status)
        self.status, self.doc = status, doc


class _EventFailed(Exception):
    """One event failed the service's way: ``{success: false, error, metadata: {error_type}}``."""

    def __init__(self, error: str, error_type: str) -> None:
        super().__init__(error)
        self.error, self.error_type = error, error_type


def _issue(kind: str, loc: list, msg: str, value: Any) -> dict:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def _parse_body(headers: Any, body: bytes) -> Any:
    """Decode the body the way FastAPI does, or raise the 422 it would give."""
    if not body:
        raise _Answer(422, {"detail": [_issue("missing", ["body"], "Field required", None)]})
    ctype = (headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        # FastAPI then validates the raw text against the model, which needs an object.
        raise _Answer(422, {"detail": [_issue("model_attributes_type", ["body"], _NOT_AN_OBJECT,
                                              body.decode("utf-8", "replace"))]})
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        error = _issue("json_invalid", ["body", getattr(exc, "pos", 0)], "JSON decode error", {})
        raise _Answer(422, {"detail": [{**error, "ctx": {"error": getattr(exc, "msg", str(exc))}}]}) from None


def _validate_event(raw: Any, loc: list, issues: list) -> dict | None:
    """Apply the request model (types, required fields, defaults); unknown fields are dropped."""
    if not isinstance(raw, dict):
        issues.append(_issue("model_attributes_type", loc, _NOT_AN_OBJECT, raw))
        return None
    event, before = {}, len(issues)
    for name, (kind, nullable, default) in _FIELDS.items():
        value = raw.get(name, default)
        if value is _REQUIRED:
            issues.append(_issue("missing", loc + [name], "Field required", raw))
        elif value is None and nullable:
            event[name] = None
        elif not isinstance(value, kind):
            code, msg = _TYPE_ERRORS[kind]
            issues.append(_issue(code, loc + [name], msg, value))
        elif kind is list and not all(isinstance(item, str) for item in value):
            at = next(i for i, item in enumerate(value) if not isinstance(item, str))
            issues.append(_issue("string_type", loc + [name, at], _TYPE_ERRORS[str][1], value[at]))
        else:
            # Never share the default {} or [] (strings and numbers need no copy).
            event[name] = value.copy() if type(value) in (dict, list) else value
    return event if len(issues) == before else None


def _validate_batch(doc: Any) -> tuple[list[dict], str | None, str]:
    """The batch model: ``{events, batch_id?, processing_mode?}``, or the 422 it gives."""
    if not isinstance(doc, dict):
        raise _Answer(422, {"detail": [_issue("model_attributes_type", ["body"], _NOT_AN_OBJECT, doc)]})
    issues: list = []
    events, batch_id, mode = doc.get("events"), doc.get("batch_id"), doc.get("processing_mode", "parallel")
    if "events" not in doc:
        issues.append(_issue("missing", ["body", "events"], "Field required", doc))
    elif not isinstance(events, list):
        issues.append(_issue("list_type", ["body", "events"], _TYPE_ERRORS[list][1], events))
    else:
        events = [_validate_event(raw, ["body", "events", i], issues) for i, raw in enumerate(events)]
    if batch_id is not None and not isinstance(batch_id, str):
        issues.append(_issue("string_type", ["body", "batch_id"], _TYPE_ERRORS[str][1], batch_id))
    if mode not in ("parallel", "sequential"):
        issues.append(_issue("literal_error", ["body", "processing_mode"],
                             "Input should be 'parallel' or 'sequential'", mode))
    if issues:
        raise _Answer(422, {"detail": issues})
    return events, batch_id, mode


def _contract_error(event: dict) -> str | None:
    """The handler's own checks, answered 400 ``{detail}`` before anything is stored."""
    kind, parents = event["event_type"], event["parent_pattern_ids"]
    if kind not in EVENT_TYPES:
        return f"Invalid event_type '{kind}'. Must be one of: {', '.join(EVENT_TYPES)}"
    if not event["pattern_id"]:
        return "pattern_id must not be empty"
    for name, allowed in (("edge_type", EDGE_TYPES), ("transformation_type", TRANSFORMATION_TYPES)):
        if event[name] is not None and event[name] not in allowed:
            return f"Invalid {name} '{event[name]}'. Must be one of: {', '.join(allowed)}"
    if kind in _CREATIONS and not event["pattern_data"]:
        return f"pattern_data must not be empty for {kind}"
    if kind in _DERIVATIONS and not parents:
        return f"{kind} requires parent_pattern_ids"
    if kind == "pattern_merged" and len(parents) < 2:
        return "pattern_merged requires at least 2 parent_pattern_ids"
    return None


class _Store:
    """Nodes keyed by (pattern_id, pattern_version) and the event log; mirrored to SQLite if asked."""

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS nodes (pattern_id TEXT, pattern_version TEXT, seq INTEGER,
            body TEXT, PRIMARY KEY (pattern_id, pattern_version));
        CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
    """

    def __init__(self, db_path: str | None) -> None:
        self.lock = threading.RLock()  # callers hold it across a whole batch
        self.changed = threading.Condition(self.lock)  # notified on every stored event
        self._db_path, self._db = db_path, None
        self._nodes: dict[tuple[str, str], dict] = {}
        self._newest: dict[str, dict] = {}  # pattern_id -> its newest node (parent lookup)
        self._events: list[dict] = []
        self._seq = 0  # creation order of nodes, which decides the "newest" version

    def open(self) -> None:
        with self.lock:
            if self._db_path is None or self._db is not None:
                return
            self._db = sqlite3.connect(str(self._db_path), check_same_thread=False)
            self._db.executescript(self._SCHEMA)
            query = "SELECT body FROM {} ORDER BY seq"
            nodes = [json.loads(body) for (body,) in self._db.execute(query.format("nodes"))]
            self._events = [json.loads(body) for (body,) in self._db.execute(query.format("events"))]
            self._nodes = {(n["pattern_id"], n["pattern_version"]): n for n in nodes}
            self._newest = {n["pattern_id"]: n for n in nodes}  # ordered by seq
            self._seq = max((n["seq"] for n in nodes), default=0)

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _write(self, sql: str, *args: Any) -> None:
        if self._db is not None:
            with self._db:
                # Values may be callables, so JSON is made only when there is a file.
                self._db.execute(sql, tuple(a() if callable(a) else a for a in args))

    def node(self, pattern_id: str, version: str) -> dict | None:
        return self._nodes.get((pattern_id, version))

    def newest(self, pattern_id: str) -> dict | None:
        """The latest node of that id, any version: how the service resolves a parent."""
        return self._newest.get(pattern_id)

    def put_node(self, node: dict) -> None:
        with self.lock:
            if "seq" not in node:
                self._seq += 1
                node["seq"] = self._seq
            self._nodes[(node["pattern_id"], node["pattern_version"])] = node
            newest = self._newest.get(node["pattern_id"])
            if newest is None or newest["seq"] <= node["seq"]:
                self._newest[node["pattern_id"]] = node
            self._write("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?)",
                        node["pattern_id"], node["pattern_version"], node["seq"], lambda: json.dumps(node))

    def add_event(self, event: dict) -> None:
        with self.lock:
            self._events.append(event)
            self._write("INSERT INTO events (body) VALUES (?)", lambda: json.dumps(event))
            self.changed.notify_all()

    def sizes(self) -> tuple[int, int]:
        with self.lock:
            return len(self._nodes), len(self._events)

    def nodes(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(sorted(self._nodes.values(), key=lambda n: n["seq"]))

    def events(self) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self._events)

    def clear(self) -> None:
        with self.lock:
            self._nodes, self._newest, self._events = {}, {}, []
            self._write("DELETE FROM nodes")
            self._write("DELETE FROM events")


class Collector:
    """A loopback stand-in for the intelligence service, with switchable faults.

    >>> with Collector() as c:  # doctest: +SKIP
    ...     c.set_fault("error", status=503)
    ...     requests.post(c.url + "/api/pattern-traceability/lineage/track", json=event)

    ``rate_limit`` requests per sliding ``window_s`` are shared by all clients (None: no
    limit); ``clock`` is the window's monotonic clock, so tests can move time by hand.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, db_path: str | None = None,
                 rate_limit: int | None = None, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, batch_route: bool = True) -> None:
        self._host, self._port = host, port
        self._batch_route = batch_route  # False: answer like an older service without it
        self._store = _Store(db_path)
        self._rate_limit, self._window_s, self._clock = rate_limit, window_s, clock
        self._stamps: deque[float] = deque()  # admitted requests inside the window
        self._lock = threading.Lock()  # everything below, and the window
        self._mode, self._params = "none", {}
        self._release = threading.Event()  # set when the current hang must end
        self._stopping = threading.Event()
        self._fault_hits = self._hanging = 0
        self._counts: dict[str, dict[str, int]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Collector:
        """Load the store, bind the socket and serve from a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("collector already started")
        self._store.open()
        self._stopping.clear()
        self._release = threading.Event()
        self._server = _Server((self._host, self._port), _Handler)
        self._server.collector = self
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(_POLL_S,),
                                        name=f"pattern-track-collector-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests, stop serving, close the socket and the store. Idempotent."""
        server, self._server = self._server, None
        self._stopping.set()
        with self._lock:
            self._release.set()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
            self._thread.join(5.0)
        self._store.close()

    def __enter__(self) -> Collector:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def set_fault(self, mode: str, **params: Any) -> None:
        """Switch the fault mode (module docstring); a bad mode or parameter raises ValueError."""
        if mode not in _FAULTS:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(FAULT_MODES)}")
        if set(params) - set(_FAULTS[mode]):
            raise ValueError(f"fault {mode!r} takes only {sorted(_FAULTS[mode])}, not {sorted(params)}")
        merged = dict(_FAULTS[mode])
        for name, value in params.items():
            try:
                optional = value is None and _FAULTS[mode][name] is None
                merged[name] = None if optional else _PARAM_TYPES[name](value)
            except (TypeError, ValueError):
                expected = _PARAM_TYPES[name].__name__
                raise ValueError(f"fault parameter {name}={value!r} is not {expected}") from None
        if mode == "error" and (merged["status"] < 400 or merged["status"] not in _PHRASES):
            raise ValueError(f"fault status {merged['status']} is not an HTTP error status")
        if merged.get("every", 1) < 1 or min(merged.get("delay_s", 0), merged.get("interval_s", 0)) < 0:
            raise ValueError(f"fault parameters out of range: {merged}")
        with self._lock:
            self._release.set()  # requests hung so far answer 504
            self._release = threading.Event()
            self._mode, self._params, self._fault_hits = mode, merged, 0
        logger.info("collector fault mode %s %s", mode, merged)

    def reset(self) -> None:
        """Forget stored nodes and events, request counts and the rate window (not the fault)."""
        self._store.clear()
        with self._lock:
            self._counts, self._fault_hits = {}, 0
            self._stamps.clear()

    def events(self) -> list[dict]:
        """Copies of the stored events in arrival order, duplicates included."""
        return self._store.events()

    def nodes(self) -> list[dict]:
        """Copies of the stored nodes, oldest first."""
        return self._store.nodes()

    def wait_for_events(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` events are stored or ``timeout`` s pass; True if reached.

        Lets tests wait for background delivery on a condition instead of sleeping.
        """
        store = self._store
        with store.changed:
            return store.changed.wait_for(lambda: store.sizes()[1] >= count, timeout)

    def state(self) -> dict:
        """Fault mode and params, request counts by route and status, storage sizes, rate window."""
        nodes, events = self._store.sizes()
        with self._lock:
            return {"mode": self._mode, "params": dict(self._params), "hanging": self._hanging,
                    "requests": {route: dict(counts) for route, counts in self._counts.items()},
                    "events": events, "nodes": nodes,
                    "rate_limit": {"limit": self._rate_limit, "window_s": self._window_s,
                                   "current_window_requests": self._window_count()}}

    # -- request handling (handler threads) -------------------------------------------

    def _window_count(self) -> int:
        """Requests in the sliding window; the caller holds self._lock."""
        while self._stamps and self._stamps[0] <= self._clock() - self._window_s:
            self._stamps.popleft()
        return len(self._stamps)

    def _count(self, reply: _Reply) -> None:
        with self._lock:
            counts = self._counts.setdefault(reply.route, {})
            counts[str(reply.status)] = counts.get(str(reply.status), 0) + 1

    def _admit(self) -> bool:
        with self._lock:
            if self._rate_limit is not None and self._window_count() >= self._rate_limit:
                return False
            self._stamps.append(self._clock())
            return True

    def _dispatch(self, method: str, target: str, headers: Any, body: bytes) -> _Reply | None:
        """Answer one request; None means hang up without an answer."""
        path, route, match, elsewhere = urlsplit(target).path, None, None, False
        for verb, pattern, name in _ROUTES:
            found = pattern.fullmatch(path)
            if found and name == "batch" and not self._batch_route:
                found = None
            if found and verb == method:
                route, match = name, found
                break
            elsewhere = elsewhere or bool(found)
        if route is None:
            status, detail = (405, "Method Not Allowed") if elsewhere else (404, "Not Found")
            return _json_reply(status, {"detail": detail})
        # The real service counts every API request but health, even ones it then rejects.
        if route not in ("health", "control") and not self._admit():
            reply: _Reply | None = _json_reply(429, {"detail": "Rate limit exceeded"})
        elif (reply := self._fault_reply(route)) is False:
            try:
                reply = getattr(self, "_" + route)(headers, body, match)
            except _Answer as answer:
                reply = _json_reply(answer.status, answer.doc)
            with self._lock:
                if self._mode == "trickle" and route in ("track", "batch"):
                    reply.trickle_s = self._params["interval_s"]
        if reply is not None:
            reply.route = route
        return reply

    def _fault_reply(self, route: str) -> _Reply | None | bool:
        """The answer the fault mode imposes on this route, False for none, None to hang up."""
        if route in ("lineage", "control"):
            return False
        with self._lock:
            mode, params, release = self._mode, self._params, self._release
            if mode == "hang":
                self._hanging += 1
            elif mode == "flaky" and route != "health":
                self._fault_hits += 1
                if self._fault_hits % params["every"] == 0:
                    return _json_reply(500, {"detail": _DETAILS[500]})
        if mode == "hang":
            release.wait()
            with self._lock:
                self._hanging -= 1
            if self._stopping.is_set():
                return None
            # Like the real service over a hung database: it gives up and stores nothing.
            return False if route == "health" else _json_reply(504, {"detail": _DETAILS[504]})
        if mode == "slow":
            return None if self._stopping.wait(params["delay_s"]) else False
        if mode == "html":
            return _Reply(200, _HTML, "text/html; charset=utf-8")
        if route == "health":
            return False
        if mode == "error":
            detail = params["detail"] or _DETAILS.get(params["status"]) or _PHRASES[params["status"]]
            return _json_reply(params["status"], {"detail": detail})
        if mode == "rate_limit":
            retry = {} if params["retry_after"] is None else {"Retry-After": params["retry_after"]}
            return _json_reply(429, {"detail": "Rate limit exceeded"}, **retry)
        if mode == "degraded":
            return _json_reply(503, {"detail": _DETAILS[503]})
        if mode == "redirect":
            return _Reply(307, content_type=None, headers={"Location": params["location"]})
        if mode == "empty":
            return _Reply(200)
        return False

    @staticmethod
    def _meta(started: float) -> dict:
        return {"correlation_id": _new_id(),
                "processing_time_ms": round((time.perf_counter() - started) * 1000, 3)}

    def _track(self, headers: Any, body: bytes, match: re.Match) -> _Reply:
        started, issues = time.perf_counter(), []
        event = _validate_event(_parse_body(headers, body), ["body"], issues)
        if issues:
            raise _Answer(422, {"detail": issues})
        detail = _contract_error(event)
        if detail:
            raise _Answer(400, {"detail": detail})
        try:
            with self._store.lock:
                data = self._apply(event, None)
        except _EventFailed as exc:
            return _json_reply(400, {"success": False, "error": exc.error,
                                     "metadata": {**self._meta(started), "error_type": exc.error_type}})
        return _json_reply(200, {"success": True, "data": data, "metadata": self._meta(started)})

    def _batch(self, headers: Any, body: bytes, match: re.Match) -> _Reply:
        started = time.perf_counter()
        events, batch_id, requested = _validate_batch(_parse_body(headers, body))
        if not events:
            raise _Answer(500, {"detail": "Batch tracking failed: no events to process"})
        for index, event in enumerate(events):
            detail = _contract_error(event)
            if detail:  # one bad event rejects the whole batch before anything is stored
                raise _Answer(400, {"detail": f"Event {index}: {detail}"})
        batch_id, succeeded, failed = batch_id or _new_id(), [], []
        with self._store.lock:  # always in order, whatever was requested
            for index, event in enumerate(events):
                one_started = time.perf_counter()
                result = {"event_index": index, "pattern_id": event["pattern_id"]}
                try:
                    data = self._apply(event, batch_id)
                except _EventFailed as exc:
                    failed.append({**result, "error": exc.error, "metadata": {"error_type": exc.error_type}})
                except _Answer as exc:  # a self-loop: a 400 detail when sent alone
                    failed.append({**result, "error": exc.doc["detail"],
                                   "metadata": {"error_type": "validation_error"}})
                else:
                    succeeded.append({**result, "data": data, "metadata": self._meta(one_started)})
        summary = {"total_events": len(events), "successful_events": len(succeeded),
                   "failed_events": len(failed), "handled_duplicates": 0,
                   "processing_mode": "sequential", "requested_processing_mode": requested}
        return _json_reply(200, {"success": not failed, "batch_summary": summary,
                                 "successful_results": succeeded, "failed_results": failed,
                                 "metadata": {**self._meta(started), "batch_id": batch_id}})

    def _apply(self, event: dict, batch_id: str | None) -> dict:
        """Store one contract-valid event (store lock held); returns the answer's ``data``."""
        with self._lock:
            if self._mode == "db_down":
                raise _EventFailed(*_DB_DOWN)
        kind, pid, version = event["event_type"], event["pattern_id"], event["pattern_version"]
        node, edges, status = self._store.node(pid, version), [], "created"
        if kind in _CREATIONS:  # parent_pattern_ids and edge_type are ignored
            status = "already_exists" if node else "created"
        elif kind in ("pattern_applied", "pattern_deprecated"):
            node, status = self._store.newest(pid), "recorded"
            if node is None:
                raise _EventFailed(f"Pattern {pid} not found", "validation_error")
        elif not (node and node["parents"]):  # a resent derivation answers like the first time
            edges = self._edges(event)
        too_long = [limit for name, limit in MAX_LENGTHS.items() if len(event[name] or "") > limit]
        if too_long:
            raise _EventFailed(f"value too long for type character varying({too_long[0]})",
                               "StringDataRightTruncationError")
        if node is None:
            node = {"node_id": _new_id(), "status": "active", "parents": [],
                    "created_at": time.time(), **{name: event[name] for name in _NODE_FIELDS}}
        if edges or kind == "pattern_deprecated" or "seq" not in node:
            node["parents"] = node["parents"] + edges
            node["status"] = "deprecated" if kind == "pattern_deprecated" else node["status"]
            self._store.put_node(node)
        self._store.add_event({"event_id": _new_id(), "received_at": time.time(),
                               "node_id": node["node_id"], "batch_id": batch_id, **event})
        return {"pattern_id": pid, "pattern_version": node["pattern_version"], "event_type": kind,
                "node_id": node["node_id"], "status": status,
                "parent_node_ids": [edge["node_id"] for edge in node["parents"]]}

    def _edges(self, event: dict) -> list[dict]:
        """Resolve a derivation's parents (only the first of a modification) into edges."""
        merge = event["event_type"] == "pattern_merged"
        default_edge = "merged_from" if merge else "modified_from"
        transformation = "merge" if merge else (event["transformation_type"] or "refactor")
        edges = []
        for name in event["parent_pattern_ids"][:None if merge else 1]:
            parent = self._store.newest(name)
            if parent is None:
                raise _EventFailed(f"Parent pattern {name} not found", "validation_error")
            version = parent["pattern_version"]
            if (name, version) == (event["pattern_id"], event["pattern_version"]):
                raise _Answer(400, {"detail": f"Self-loop: {name} {version} cannot be its own parent"})
            edges.append({"node_id": parent["node_id"], "pattern_id": name, "pattern_version": version,
                          "edge_type": event["edge_type"] or default_edge, "transformation_type": transformation})
        return edges

    def _health(self, headers: Any, body: bytes, match: re.Match) -> _Reply:
        started = time.perf_counter()
        with self._lock:
            mode, in_window = self._mode, self._window_count()
        performance: dict[str, Any] = {"rate_limiting": {
            "current_window_requests": in_window, "window_seconds": self._window_s,
            "max_requests_per_window": SERVICE_RATE_LIMIT if self._rate_limit is None else self._rate_limit}}
        if mode != "degraded":  # a service that never reached its database has no pool at all
            size = 0 if mode == "db_down" else 2
            performance["database_pool"] = {"min_size": 2, "max_size": 10,
                                            "pool_size": size, "free_size": size}
        degraded = mode == "degraded"
        return _json_reply(200, {
            "status": "degraded" if degraded else "healthy",
            "components": {"lineage_tracker": "database_unavailable" if degraded else "operational",
                           "usage_analytics": "operational", "feedback_orchestrator": "operational"},
            "performance": performance,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "response_time_ms": round((time.perf_counter() - started) * 1000, 3)})

    def _lineage(self, headers: Any, body: bytes, match: re.Match) -> _Reply:
        pattern_id = unquote(match["pattern_id"])
        nodes = [n for n in self.nodes() if n["pattern_id"] == pattern_id]
        if not nodes:
            raise _Answer(404, {"detail": f"No lineage found for pattern {pattern_id}"})
        events = [e for e in self.events() if e["pattern_id"] == pattern_id]
        return _json_reply(200, {"success": True, "metadata": self._meta(time.perf_counter()),
                                 "data": {"pattern_id": pattern_id, "nodes": nodes, "events": events}})

    def _control(self, headers: Any, body: bytes, match: re.Match) -> _Reply:
        action = match["action"]
        if action == "events":
            return _json_reply(200, self.events())
        if action == "reset":
            self.reset()
        if action == "fault":
            try:
                params = json.loads(body or b"{}")
                self.set_fault(params.pop("mode"), **params)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                return _json_reply(400, {"detail": f"bad fault request: {exc}"})
        return _json_reply(200, self.state())


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request must hold neither the process nor stop()
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retries)
    collector: Collector

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()  # open keep-alive connections
        self.connections_lock = threading.Lock()

    def drop_connections(self) -> None:
        """A stopped service answers nothing, not even on connections kept alive."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is routine here, not a traceback on stderr.
        logger.debug("collector connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so every answer carries Content-Length
    server_version = "pattern-track-collector"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without this, Nagle holds the second one back.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        logger.debug("collector %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        collector = self.server.collector
        try:
            reply = collector._dispatch(self.command, self.path, self.headers, self._read_body())
        except _Answer as exc:  # the request itself is unreadable
            self.close_connection = True
            reply = _json_reply(exc.status, exc.doc)
        except Exception:
            logger.exception("collector failed on %s %s", self.command, self.path)
            reply = _json_reply(500, {"detail": _DETAILS[500]})
        if reply is None:
            self.close_connection = True
            return
        collector._count(reply)
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if reply.trickle_s is None:
                self.wfile.write(reply.body)
                return
            for i in range(len(reply.body)):
                if collector._stopping.wait(reply.trickle_s):
                    self.close_connection = True
                    return
                self.wfile.write(reply.body[i:i + 1])
        except OSError:
            self.close_connection = True  # the client went away

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        """The body by Content-Length (none without one); a bad length is a 400 or a 413."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Answer(411, {"detail": "Length Required"})
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            raise _Answer(400, {"detail": "Invalid Content-Length header"})
        if int(length) > MAX_BODY_BYTES:
            raise _Answer(413, {"detail": "Request body too large"})
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            raise _Answer(400, {"detail": "Incomplete request body"})
        return body


def main(argv: list[str] | None = None) -> int:
    """Serve a collector until SIGINT or SIGTERM, after printing its URL on one line."""
    parser = argparse.ArgumentParser(prog="python -m pattern_track.collector",
                                     description=__doc__.splitlines()[0])
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


if __name__ == "__main__":
    raise SystemExit(main())
