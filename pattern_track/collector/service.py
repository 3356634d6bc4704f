"""``Service``: the real service's routes over a ``Store``, with the fault mode and the rate window.

A request is routed (a path known under another method is a 405, as in FastAPI), may be
refused by a proxy in front (the ``body_limit`` fault), is counted against the rate window
shared by all clients, offered to the fault mode, then answered by its route: the two
track routes store through ``Store``, health reports the fault mode's view of the
database, the read routes (``reads``) answer from the store. Under ``late``, ``truncate``
and ``reset`` a track route stores (``reset``: only the first events) and the fault mode
then delays, cuts or drops its answer. Like the real service (Starlette routes the
percent-decoded path), an id is matched decoded: one holding a ``/`` can be stored but
never read (the router's own 404 ``{detail}``).
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from . import reads
from .contract import (
    API,
    SERVICE_RATE_LIMIT,
    Answer,
    EventFailed,
    Reply,
    contract_error,
    json_reply,
    new_id,
    parse_body,
    validate_batch,
    validate_event,
)
from .faults import Faults
from .store import Store

__all__ = ["Service"]

#: (method, path, route). A path that matches under another method is a 405, as in FastAPI,
#: which is why POST /lineage/track-batch (matching GET /lineage/{pattern_id}) is a 405.
_ROUTES = [(method, re.compile(path), name) for method, path, name in [
    ("POST", API + "/lineage/track", "track"),
    ("POST", API + "/lineage/track/batch", "batch"),
    ("GET", API + "/health", "health"),
    ("GET", API + "/lineage/(?P<pattern_id>[^/]+)/evolution", "evolution"),
    ("GET", API + "/lineage/(?P<pattern_id>[^/]+)", "lineage"),
]]
#: Routes the rate window does not count (the real service has no limit on them).
_UNLIMITED = ("health", "evolution")


class Service:
    """The service's answers; ``rate_limit`` requests per sliding ``window_s`` (None: no limit)."""

    def __init__(self, store: Store, faults: Faults, *, rate_limit: int | None, window_s: float,
                 clock: Callable[[], float], batch_route: bool) -> None:
        self._store, self._faults = store, faults
        self._batch_route = batch_route  # False: answer like an older service without it
        self._rate_limit, self._window_s, self._clock = rate_limit, window_s, clock
        self._stamps: deque[float] = deque()  # admitted requests inside the window
        self._lock = threading.Lock()  # the window

    def rate_state(self) -> dict:
        with self._lock:
            return {"limit": self._rate_limit, "window_s": self._window_s,
                    "current_window_requests": self._window_count()}

    def reset_window(self) -> None:
        with self._lock:
            self._stamps.clear()

    def answer(self, method: str, path: str, headers: Any, body: bytes, query: str = "") -> Reply | None:
        """Answer one request to the service's paths (``path`` as sent, percent-encoded;
        ``query`` the text after ``?``); None means hang up without an answer."""
        path = unquote(path)
        route, match, elsewhere = None, None, False
        for verb, pattern, name in _ROUTES:
            found = pattern.fullmatch(path)
            if found and name == "batch" and not self._batch_route:
                found = None
            if found and verb == method:
                route, match = name, found
                break
            elsewhere = elsewhere or bool(found)
        # A proxy in front refuses before the service routes, limits or stores anything.
        if (refused := self._faults.proxy_refusal(len(body))) is not None:
            refused.route = route or "unknown"
            return refused
        if route is None:
            status, detail = (405, "Method Not Allowed") if elsewhere else (404, "Not Found")
            return json_reply(status, {"detail": detail})
        # The real service counts every API request but health and evolution, even ones it then rejects.
        if route not in _UNLIMITED and not self._admit():
            reply: Reply | None = json_reply(429, {"detail": "Rate limit exceeded"})
        elif (imposed := self._faults.before(route)) is not False:
            reply = imposed  # the fault mode's answer, or None to hang up
        else:
            untold = self._faults.untold(route)  # late, truncate, reset: store, then fail to tell
            keep = {} if untold is None else {"keep": untold.keep}
            try:
                reply = getattr(self, "_" + route)(headers, body, match, query, **keep)
            except Answer as answer:
                reply = json_reply(answer.status, answer.doc)
            reply.trickle_s = self._faults.trickle_s(route)
            if untold is not None:  # whatever the route answered, stored or not
                reply = self._faults.tell(untold, reply)
        if reply is not None:
            reply.route = route
        return reply

    def _window_count(self) -> int:
        """Requests in the sliding window; the caller holds self._lock."""
        while self._stamps and self._stamps[0] <= self._clock() - self._window_s:
            self._stamps.popleft()
        return len(self._stamps)

    def _admit(self) -> bool:
        with self._lock:
            if self._rate_limit is not None and self._window_count() >= self._rate_limit:
                return False
            self._stamps.append(self._clock())
            return True

    @staticmethod
    def _meta(started: float) -> dict:
        return {"correlation_id": new_id(),
                "processing_time_ms": round((time.perf_counter() - started) * 1000, 3)}

    def _apply(self, event: dict, batch_id: str | None) -> dict:
        """Store one event unless the fault mode fails it first (store lock held)."""
        failure = self._faults.event_failure(event)
        if failure is not None:
            raise failure
        return self._store.apply(event, batch_id)

    def _track(self, headers: Any, body: bytes, match: re.Match, query: str, keep: int | None = None) -> Reply:
        """One event; ``keep`` 0 (the ``reset`` fault) stores nothing, for an answer never sent."""
        started = time.perf_counter()
        issues: list[dict[str, Any]] = []
        event = validate_event(parse_body(headers, body), ["body"], issues)
        if issues or event is None:  # None only with issues
            raise Answer(422, {"detail": issues})
        detail = contract_error(event)
        if detail:
            raise Answer(400, {"detail": detail})
        self._faults.reached_database()
        if keep == 0:  # the service dies before it stores: the answer is reset, never read
            return json_reply(200, {"success": True, "data": None, "metadata": self._meta(started)})
        try:
            with self._store.lock:
                data = self._apply(event, None)
        except EventFailed as exc:
            return json_reply(400, {"success": False, "error": exc.error,
                                    "metadata": {**self._meta(started), "error_type": exc.error_type}})
        return json_reply(200, {"success": True, "data": data, "metadata": self._meta(started)})

    def _batch(self, headers: Any, body: bytes, match: re.Match, query: str, keep: int | None = None) -> Reply:
        """A batch, in order; only its first ``keep`` events (None: all) when the ``reset`` fault cuts it short."""
        started = time.perf_counter()
        events, batch_id, requested = validate_batch(parse_body(headers, body))
        if not events:
            raise Answer(500, {"detail": "Batch tracking failed: no events to process"})
        for index, event in enumerate(events):
            detail = contract_error(event)
            if detail:  # one bad event rejects the whole batch before anything is stored
                raise Answer(400, {"detail": f"Event {index}: {detail}"})
        self._faults.reached_database()
        batch_id, succeeded, failed = batch_id or new_id(), [], []
        with self._store.lock:  # always in order, whatever was requested
            for index, event in enumerate(events[:keep]):
                one_started = time.perf_counter()
                result = {"event_index": index, "pattern_id": event["pattern_id"]}
                try:
                    data = self._apply(event, batch_id)
                except EventFailed as exc:
                    failed.append({**result, "error": exc.error, "metadata": {"error_type": exc.error_type}})
                except Answer as exc:  # a self-loop: a 400 detail when sent alone
                    failed.append({**result, "error": exc.doc["detail"],
                                   "metadata": {"error_type": "validation_error"}})
                else:
                    succeeded.append({**result, "data": data, "metadata": self._meta(one_started)})
        summary = {"total_events": len(events), "successful_events": len(succeeded),
                   "failed_events": len(failed), "handled_duplicates": 0,
                   "processing_mode": "sequential", "requested_processing_mode": requested}
        return json_reply(200, {"success": not failed, "batch_summary": summary,
                                "successful_results": succeeded, "failed_results": failed,
                                "metadata": {**self._meta(started), "batch_id": batch_id}})

    def _health(self, headers: Any, body: bytes, match: re.Match, query: str) -> Reply:
        started = time.perf_counter()
        degraded, pool = self._faults.health()
        with self._lock:
            in_window = self._window_count()
        performance: dict[str, Any] = {"rate_limiting": {
            "current_window_requests": in_window, "window_seconds": self._window_s,
            "max_requests_per_window": SERVICE_RATE_LIMIT if self._rate_limit is None else self._rate_limit}}
        if pool is not None:
            performance["database_pool"] = pool
        return json_reply(200, {
            "status": "degraded" if degraded else "healthy",
            "components": {"lineage_tracker": "database_unavailable" if degraded else "operational",
                           "usage_analytics": "operational", "feedback_orchestrator": "operational"},
            "performance": performance,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "response_time_ms": round((time.perf_counter() - started) * 1000, 3)})

    def _evolution(self, headers: Any, body: bytes, match: re.Match, query: str) -> Reply:
        started, pattern_id = time.perf_counter(), match["pattern_id"]
        database = self._faults.database()
        if database is not None and database[0] == "unavailable":  # no pool at all
            return json_reply(503, {"success": False, "error": database[1], "pattern_id": pattern_id})
        if database is not None:  # the pool's connection fails inside the route's try
            return json_reply(500, {"success": False, "error": f"Evolution path query failed: {database[1]}",
                                    "pattern_id": pattern_id, "metadata": {
                                        "processing_time_ms": self._meta(started)["processing_time_ms"]}})
        self._faults.reached_database()
        return json_reply(200, reads.evolution(self._store, pattern_id))

    def _lineage(self, headers: Any, body: bytes, match: re.Match, query: str) -> Reply:
        started, pattern_id = time.perf_counter(), match["pattern_id"]
        query_type = (parse_qs(query).get("query_type") or ["ancestry"])[-1]
        database = self._faults.database()
        if database is not None and database[0] == "unavailable":  # the tracker dependency's 503
            return json_reply(503, {"detail": database[1]})
        if database is not None:  # the tracker's error result; its text names no "database"
            return json_reply(500, {"success": False, "error": database[1],
                                    "metadata": {"error_type": database[2]},
                                    "processing_time_ms": self._meta(started)["processing_time_ms"]})
        self._faults.reached_database()
        if query_type == "ancestry":
            reads.ancestry(self._store, pattern_id)  # always raises: broken on the service
        return json_reply(200, reads.descendants(self._store, pattern_id))
