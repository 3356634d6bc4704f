"""Fault modes: the collector's switchable misbehaviour, and the state they need.

``modes`` declares each mode with its parameters and their defaults (``FAULTS``,
re-exported here with ``FAULT_HELP`` and ``FAULT_MODES``). ``Faults`` holds the current
mode for the request threads: what a proxy in front refuses (``proxy_refusal``), what the
mode imposes on a route before the route runs (``before``), on one event
(``event_failure``), on the health answer (``health``) and on the database a read route
queries (``database``); and, for the modes that store and then leave the client untold
(``late``, ``truncate``, ``reset``), how many events a track request may store and what
becomes of its answer (``untold``, ``tell``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from .contract import DETAILS, PHRASES, EventFailed, Reply, json_reply
from .modes import FAULT_HELP, FAULT_MODES, FAULTS, checked_params

__all__ = ["FAULTS", "FAULT_HELP", "FAULT_MODES", "Faults", "Untold"]

logger = logging.getLogger(__name__)

_DB_DOWN = ("[Errno 111] Connect call failed", "ConnectionRefusedError")
_TRACK_ROUTES = ("track", "batch")
#: The modes under which the track routes store as normal and the client is then not told.
_UNTOLD = ("late", "truncate", "reset")
_QUERY_TIMED_OUT = "Query operation timed out"  # the lineage query's own 504
_HTML = b"<html><head><title>Sign in</title></head><body><h1>Please sign in</h1></body></html>"
#: nginx's own page for client_max_body_size (it also closes the connection).
_NGINX_413 = (b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
              b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
              b"</body>\r\n</html>\r\n")
#: asyncpg's pool: min_size connections once created, what health shows when it is not empty.
_POOL = {"min_size": 2, "max_size": 10}


@dataclasses.dataclass(frozen=True)
class Untold:
    """How one track request's answer fails to reach its client (``late``, ``truncate`` or
    ``reset``), fixed when the request arrives: a mode switch cannot split a request."""

    mode: str
    params: dict[str, Any]

    @property
    def keep(self) -> int | None:
        """How many of the request's events the route stores, in order (None: all)."""
        return self.params["after_events"] if self.mode == "reset" else None


class Faults:
    """The current fault mode, shared by the request threads.

    ``stopping`` ends waits early; ``clock`` (monotonic seconds) times the idle pool.
    """

    def __init__(self, stopping: threading.Event, clock: Callable[[], float]) -> None:
        self._stopping, self._clock = stopping, clock
        self._lock = threading.Lock()  # everything below
        self._mode = "none"
        self._params: dict[str, Any] = {}
        self._release = threading.Event()  # set when the current hang must end
        self._hits = self._hanging = 0
        self._last_track: float | None = None  # when a track request last reached the database

    def set(self, mode: str, **params: Any) -> None:
        """Switch the mode; requests hung so far are released (and answer 504)."""
        merged = checked_params(mode, params)
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self._mode, self._params, self._hits = mode, merged, 0
            self._last_track = None  # an idle pool starts empty
        logger.info("collector fault mode %s %s", mode, merged)

    def rearm(self) -> None:
        """A fresh release event, for a collector (re)started after ``release_all``."""
        with self._lock:
            self._release = threading.Event()

    def release_all(self) -> None:
        """End every hang now (the collector is stopping)."""
        with self._lock:
            self._release.set()

    def reset_counts(self) -> None:
        with self._lock:
            self._hits = 0

    def state(self) -> dict:
        with self._lock:
            state = {"mode": self._mode, "params": dict(self._params), "hanging": self._hanging}
        pool = self.health()[1]
        return {**state, "pool_size": None if pool is None else pool["pool_size"]}

    def proxy_refusal(self, body_bytes: int) -> Reply | None:
        """What a proxy in front of the service answers instead of passing the request on."""
        with self._lock:
            if self._mode == "body_limit" and body_bytes > self._params["max_bytes"]:
                return Reply(413, _NGINX_413, "text/html", close=True)
        return None

    def before(self, route: str) -> Reply | Literal[False] | None:
        """The answer the mode imposes on this route, False for none, None to hang up.

        ``hang``, ``slow`` and ``html`` act on every route (the process or a proxy in
        front misbehaves); after a hang, health and evolution (no timeout on the service)
        answer normally, the track routes and the lineage query (30 s timeouts) 504. The
        other modes are the track routes' alone: the database's condition reaches the
        read routes through ``database()``.
        """
        with self._lock:
            mode, params, release = self._mode, self._params, self._release
            if mode == "hang":
                self._hanging += 1
            elif mode == "flaky" and route in _TRACK_ROUTES:
                self._hits += 1
                if self._hits % params["every"] == 0:
                    return json_reply(500, {"detail": DETAILS[500]})
        if mode == "hang":
            release.wait()
            with self._lock:
                self._hanging -= 1
            if self._stopping.is_set():
                return None
            # Like the real service over a hung database: it gives up and stores nothing.
            if route in _TRACK_ROUTES:
                return json_reply(504, {"detail": DETAILS[504]})
            return json_reply(504, {"detail": _QUERY_TIMED_OUT}) if route == "lineage" else False
        if mode == "slow":
            return None if self._stopping.wait(params["delay_s"]) else False
        if mode == "html":
            return Reply(200, _HTML, "text/html; charset=utf-8")
        if route not in _TRACK_ROUTES:
            return False
        if mode == "error":
            detail = params["detail"] or DETAILS.get(params["status"]) or PHRASES[params["status"]]
            return json_reply(params["status"], {"detail": detail})
        if mode == "rate_limit":
            retry = {} if params["retry_after"] is None else {"Retry-After": params["retry_after"]}
            return json_reply(429, {"detail": "Rate limit exceeded"}, **retry)
        if mode == "degraded":
            return json_reply(503, {"detail": DETAILS[503]})
        if mode == "redirect":
            return Reply(307, content_type=None, headers={"Location": params["location"]})
        if mode == "empty":
            return Reply(200)
        return False

    def database(self) -> tuple[str, str, str | None] | None:
        """The database as a read route finds it: None when usable, else (condition, error, error_type).

        ``("unavailable", ...)``: the service never reached it (``degraded``: no pool);
        ``("down", ...)``: lost after connecting (``db_down``: the query fails).
        """
        with self._lock:
            mode = self._mode
        if mode == "degraded":
            return "unavailable", DETAILS[503], None
        if mode == "db_down":
            return ("down", *_DB_DOWN)
        return None

    def trickle_s(self, route: str) -> float | None:
        """The byte interval for this route's answer body, None to send it at once."""
        with self._lock:
            if self._mode == "trickle" and route in ("track", "batch"):
                return self._params["interval_s"]
        return None

    def untold(self, route: str) -> Untold | None:
        """The store-then-fail-to-tell mode for this request, None when there is none."""
        with self._lock:
            if self._mode in _UNTOLD and route in _TRACK_ROUTES:
                return Untold(self._mode, dict(self._params))
        return None

    def tell(self, untold: Untold, reply: Reply) -> Reply | None:
        """The route's answer as it leaves: ``delay_s`` late (None: the collector stopped
        meanwhile, hang up), cut after ``at_bytes`` (always short of the whole body) or reset.

        It runs after the route, which holds the store's lock only while it stores.
        """
        if untold.mode == "late":
            return None if self._stopping.wait(untold.params["delay_s"]) else reply
        if untold.mode == "truncate":
            reply.cut_at = min(untold.params["at_bytes"], max(len(reply.body) - 1, 0))
        else:
            reply.reset = True
        return reply

    def event_failure(self, event: dict) -> EventFailed | None:
        """The per-event failure the mode imposes on this event, checked before it is stored.

        The route answers it in the service's per-event shape: a 400 for one event, an
        entry of ``failed_results`` in a batch whose other events are stored.
        """
        with self._lock:
            mode, params = self._mode, self._params
        if mode == "db_down":
            return EventFailed(*_DB_DOWN)
        if mode == "unknown_error" and params["match"] in event["pattern_id"]:
            return EventFailed(f"unexpected {params['error_type']} while storing the event", params["error_type"])
        return None

    def reached_database(self) -> None:
        """A track request passed validation, or a read route queried: asyncpg refills its pool."""
        now = self._clock()
        with self._lock:
            self._last_track = now

    def health(self) -> tuple[bool, dict | None]:
        """Whether health says degraded, and its ``performance.database_pool`` (None: no pool).

        Health never refills an idle pool: only ``reached_database`` does.
        """
        now = self._clock()
        with self._lock:
            mode, params, last = self._mode, self._params, self._last_track
        if mode == "degraded":  # a service that never reached its database has no pool at all
            return True, None
        idle = mode == "idle_pool" and (last is None or now - last >= params["idle_s"])
        size = 0 if mode == "db_down" or idle else _POOL["min_size"]
        return False, {**_POOL, "pool_size": size, "free_size": size}
