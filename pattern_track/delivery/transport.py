"""HTTP to the service: the only module that imports requests (and urllib3).

Each thread gets its own ``Session`` (requests does not promise thread safety) with one
connection, no retries (the outbox retries), no redirects and ``trust_env`` as configured.
Two things requests does not do are done with deadlines.py: a whole-request deadline (its
read timeout is per socket read), and ``abort()`` (at exit, a request in flight must not
hold the process for its whole timeout): both shut the request's socket down. The routes
and what a request comes back as (``Answer``, ``NoAnswer``) are in wire.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..config import Config
from .deadlines import Deadlines
from .wire import BATCH_PATH, HEALTH_PATH, NEVER_SENT, TRACK_PATH, Answer, NoAnswer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Answer", "NEVER_SENT", "NoAnswer", "Transport", "TRACK_PATH", "BATCH_PATH", "HEALTH_PATH"]

def _reason(exc: BaseException, timeout_s: float) -> tuple[str, str]:
    """(reason, message) for an exception of requests/urllib3 or a raw socket error."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", text
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed_out", f"no answer within {timeout_s:g}s"
    if "NameResolution" in text or "Name or service not known" in text or "Failed to resolve" in text \
            or "nodename nor servname" in text or "Temporary failure in name resolution" in text:
        return "dns", text
    if "refused" in text.lower():
        return "refused", text
    if "reset" in text.lower() or "aborted" in text.lower() or "RemoteDisconnected" in text:
        return "reset", text
    return "connection_error", text


def _read(response: requests.Response) -> Answer:
    """The answer, read whole; a 2xx whose body breaks off is kept as an incomplete answer
    (the service said it stored; batches.py and outcome.py decide what that means)."""
    try:
        return Answer(response.status_code, response.headers, response.content)
    except (requests.RequestException, OSError):
        if 200 <= response.status_code < 300:
            return Answer(response.status_code, response.headers, b"", complete=False)
        raise


def _pool_classes(sockets: weakref.WeakSet[socket.socket]) -> dict:
    """urllib3 pool classes whose connections record their socket in ``sockets``."""

    class Conn(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class TLSConn(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Conn

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConn

    return {"http": Pool, "https": TLSPool}


class _Adapter(HTTPAdapter):
    def __init__(self, sockets: weakref.WeakSet[socket.socket]) -> None:
        self._sockets = sockets
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._sockets)


class _Channel:
    """One thread's session and the sockets it has open."""

    __slots__ = ("session", "adapter", "templates", "sockets", "__weakref__")

    def __init__(self, config: Config) -> None:
        self.sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.templates: dict[tuple[str, str], requests.PreparedRequest] = {}
        session = requests.Session()
        session.trust_env = config.trust_env
        session.verify = config.verify_tls
        adapter = _Adapter(self.sockets)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.adapter = adapter
        session.headers.update({"User-Agent": "pattern_track", "Accept": "application/json"})
        if config.api_key:
            session.headers["Authorization"] = f"Bearer {config.api_key}"
        self.session = session

    def prepared(self, method: str, url: str, body: bytes | None,
                 headers: Mapping[str, str] | None) -> requests.PreparedRequest:
        """A copy of this (method, url)'s prepared request with ``body`` and ``headers``.

        Preparing a request (URL parsing, merging session settings) costs more than the
        loopback round trip; the service needs none of it per call.
        """
        template = self.templates.get((method, url))
        if template is None:
            template = self.session.prepare_request(requests.Request(method, url))
            self.templates[(method, url)] = template
        request = template.copy()
        if body is not None:
            request.body = body
            request.headers["Content-Length"] = str(len(body))
        if headers:
            request.headers.update(headers)
        return request

    def shutdown_sockets(self) -> None:
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Transport:
    """Blocking HTTP calls with a hard deadline, safe to call from several threads.

    ``watchdog=False`` starts no thread: the whole-request deadline is then the caller's
    to keep (``abort()`` from a signal handler, as ``pattern-track lineage`` does), and
    only requests' connect and per-read timeouts bound a call.
    """

    def __init__(self, config: Config, *, watchdog: bool = True) -> None:
        self._config = config
        self._base = config.base_url.rstrip("/")
        self._local = threading.local()
        self._deadlines = Deadlines(watchdog=watchdog, deadline_s=config.request_deadline_s)

    # -- calls ---------------------------------------------------------------

    def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Answer:
        c = self._config
        send_headers = {"Content-Type": "application/json"}
        if headers:
            send_headers.update(headers)
        return self._call("POST", path, body, send_headers, (c.connect_timeout_s, c.read_timeout_s),
                          c.request_deadline_s)

    def get(self, path: str, timeout_s: float) -> Answer:
        connect_s = min(timeout_s, self._config.connect_timeout_s)
        return self._call("GET", path, None, None, (connect_s, timeout_s), timeout_s)

    @contextlib.contextmanager
    def bounded(self, until: float | None) -> Iterator[None]:
        """Requests this thread makes inside end by ``until`` (``time.monotonic()``), or
        are cut: a caller's timeout (``sync_offline_events(timeout)``) is kept even with a
        request in flight. Such a cut is ours, never counted against the service."""
        previous = getattr(self._local, "until", None)
        self._local.until = until
        try:
            yield
        finally:
            self._local.until = previous

    def _call(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None,
              timeout: tuple[float, float], deadline_s: float) -> Answer:
        if self._deadlines.aborted:
            raise NoAnswer("transport closed", "cut", service_fault=False, in_doubt=False)
        until = getattr(self._local, "until", None)
        # The caller's bound, when it comes first: cut at it, and it is our cut.
        ours: float | None = until if until is not None and until - time.monotonic() < deadline_s else None
        if ours is not None:
            deadline_s = ours - time.monotonic()
            if deadline_s <= 0:
                raise NoAnswer("the caller's timeout passed before the request", "cut", service_fault=False,
                               in_doubt=False)
            timeout = (min(timeout[0], deadline_s), min(timeout[1], deadline_s))
        channel = self._channel()
        token = self._deadlines.arm(channel, deadline_s)
        try:
            url = self._base + path
            if self._config.trust_env:  # proxies and .netrc: the full requests path
                response = channel.session.request(method, url, data=body, headers=headers,
                                                   timeout=timeout, allow_redirects=False)
            else:  # the same request, sent without Session's per-call overhead (or redirects)
                response = channel.adapter.send(channel.prepared(method, url, body, headers), timeout=timeout,
                                                verify=self._config.verify_tls, proxies={})
            return _read(response)
        except (requests.RequestException, OSError) as exc:  # OSError: a socket shut down under urllib3
            if ours is not None and time.monotonic() >= ours:
                self._deadlines.expired(token)  # forget it: this cut is the caller's
                raise NoAnswer(f"cut at the caller's timeout ({type(exc).__name__})", "cut",
                               service_fault=False) from None
            raise self._no_answer(exc, token, timeout[1], deadline_s) from None
        finally:
            self._deadlines.disarm(token)

    def _no_answer(self, exc: BaseException, token: int, read_timeout_s: float, deadline_s: float) -> NoAnswer:
        if self._deadlines.aborted:
            return NoAnswer(f"cut by our own exit ({type(exc).__name__})", "cut", service_fault=False)
        if self._deadlines.expired(token):
            return NoAnswer(f"no complete answer within the {deadline_s:g}s request deadline", "timed_out")
        reason, message = _reason(exc, read_timeout_s)
        return NoAnswer(message, reason)

    def _channel(self) -> _Channel:
        channel = getattr(self._local, "channel", None)
        if channel is None:
            channel = _Channel(self._config)
            self._local.channel = channel
            self._deadlines.add(channel)
        return channel

    # -- abort -------------------------------------------------------------------

    @property
    def aborted(self) -> bool:
        return self._deadlines.aborted

    def abort(self) -> None:
        """Fail every request in flight now and refuse new ones (used at exit)."""
        self._deadlines.abort()

    def close(self) -> None:
        self.abort()
        for channel in self._deadlines.channels():
            try:
                channel.session.close()
            except Exception:  # closing is best effort
                pass
