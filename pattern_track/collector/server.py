"""``Collector``: the service on a loopback server, with its fault mode and control routes.

The collector owns the parts (store, fault mode, service, HTTP server), starts and stops
them, counts every answer by route and status, and answers the ``/_collector/*`` routes
itself; every other path goes to ``Service``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .contract import Reply, json_reply
from .faults import Faults
from .handler import Server
from .service import Service
from .store import Store

__all__ = ["CONTROL_ROUTES", "Collector"]

#: How often the accept loop looks for stop(); stop() waits up to this long.
_POLL_S = 0.01
_CONTROL = re.compile("/_collector/(?P<action>fault|reset|state|events)")
_CONTROL_METHODS = {"fault": "POST", "reset": "POST", "state": "GET", "events": "GET"}
#: The inspection and control routes, one line each (``--help``).
CONTROL_ROUTES = {
    "GET /_collector/events": "the stored events, in arrival order, duplicates included",
    "GET /_collector/state": "fault mode, request counts by route and status (or reset), sizes, rate window",
    "POST /_collector/fault": 'set the fault mode: {"mode": MODE, PARAM: VALUE, ...}; answers the state',
    "POST /_collector/reset": "forget events, nodes, counts and the rate window (keeps the fault mode)",
}


class Collector:
    """A loopback stand-in for the intelligence service, with switchable faults.

    >>> with Collector() as c:  # doctest: +SKIP
    ...     c.set_fault("error", status=503)
    ...     requests.post(c.url + "/api/pattern-traceability/lineage/track", json=event)

    ``rate_limit`` requests per sliding ``window_s`` are shared by all clients (None: no
    limit); ``clock`` is the monotonic clock of the rate window and of the ``idle_pool``
    fault, so tests can move time by hand.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, db_path: str | None = None,
                 rate_limit: int | None = None, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, batch_route: bool = True) -> None:
        self._host, self._port = host, port
        self._store = Store(db_path)
        self._stopping = threading.Event()
        self._faults = Faults(self._stopping, clock)
        self._service = Service(self._store, self._faults, rate_limit=rate_limit, window_s=window_s,
                                clock=clock, batch_route=batch_route)
        self._lock = threading.Lock()  # the counts
        self._counts: dict[str, dict[str, int]] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Collector:
        """Load the store, bind the socket and serve from a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("collector already started")
        self._store.open()
        self._stopping.clear()
        self._faults.rearm()
        self._server = Server((self._host, self._port), self._dispatch, self._count, self._stopping)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(_POLL_S,),
                                        name=f"pattern-track-collector-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests, stop serving, close the socket and the store. Idempotent."""
        server, self._server = self._server, None
        self._stopping.set()
        self._faults.release_all()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
            if self._thread is not None:  # started with the server
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
        """Switch the fault mode (package docstring); a bad mode or parameter raises ValueError."""
        self._faults.set(mode, **params)

    def reset(self) -> None:
        """Forget stored nodes and events, request counts and the rate window (not the fault)."""
        self._store.clear()
        self._faults.reset_counts()
        self._service.reset_window()
        with self._lock:
            self._counts = {}

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
        """Fault mode and params, health's pool_size, request counts by route and status (``"reset"``
        for a connection reset instead of an answer), sizes, rate window."""
        nodes, events = self._store.sizes()
        with self._lock:
            requests = {route: dict(counts) for route, counts in self._counts.items()}
        return {**self._faults.state(), "requests": requests, "events": events, "nodes": nodes,
                "rate_limit": self._service.rate_state()}

    # -- request handling (handler threads) -------------------------------------------

    def _count(self, reply: Reply) -> None:
        with self._lock:
            counts = self._counts.setdefault(reply.route, {})
            key = "reset" if reply.reset else str(reply.status)  # a reset sends no status
            counts[key] = counts.get(key, 0) + 1

    def _dispatch(self, method: str, target: str, headers: Any, body: bytes) -> Reply | None:
        """Answer one request; None means hang up without an answer."""
        parts = urlsplit(target)
        path = parts.path
        found = _CONTROL.fullmatch(path)
        if found is None:
            return self._service.answer(method, path, headers, body, parts.query)
        if method != _CONTROL_METHODS[found["action"]]:
            return json_reply(405, {"detail": "Method Not Allowed"})
        reply = self._control(found["action"], body)
        reply.route = "control"
        return reply

    def _control(self, action: str, body: bytes) -> Reply:
        if action == "events":
            return json_reply(200, self.events())
        if action == "reset":
            self.reset()
        if action == "fault":
            try:
                params = json.loads(body or b"{}")
                self.set_fault(params.pop("mode"), **params)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                return json_reply(400, {"detail": f"bad fault request: {exc}"})
        return json_reply(200, self.state())
