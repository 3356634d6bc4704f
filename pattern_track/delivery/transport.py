"""HTTP to the service: the only module that imports requests (and urllib3).

Two things requests does not do are done here:

- a whole-request deadline. Its read timeout is per socket read, so a server trickling a
  byte a second keeps a request alive for ever; a watchdog thread shuts the socket down
  at the deadline instead;
- abort. At interpreter exit CPython joins the sender threads before ``atexit`` runs, so
  an in-flight request would hold the process for its whole timeout; ``abort()`` shuts
  down every socket in use so the blocked reads return at once.

Each thread gets its own ``Session`` (requests does not promise thread safety) with one
connection, no retries (the outbox retries), no redirects and ``trust_env`` as configured.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import weakref
from typing import Iterator, Mapping, NamedTuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..config import Config

__all__ = ["Answer", "NEVER_SENT", "NoAnswer", "Transport", "TRACK_PATH", "BATCH_PATH", "HEALTH_PATH"]

log = logging.getLogger(__name__)

API = "/api/pattern-traceability"
TRACK_PATH = API + "/lineage/track"
BATCH_PATH = API + "/lineage/track/batch"
HEALTH_PATH = API + "/health"


class Answer(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: False when the status line and headers arrived but the body did not, whole (a reply
    #: cut short by a proxy, a reset, our own deadline): ``body`` is then empty.
    complete: bool = True


#: Reasons of a request that never reached the service: nothing it sent can be stored.
NEVER_SENT = frozenset({"refused", "dns", "tls"})


class NoAnswer(Exception):
    """The request got no HTTP answer.

    ``reason`` tells why: ``refused``, ``timed_out``, ``tls``, ``dns``, ``reset``,
    ``connection_error`` or ``cut`` (we aborted it ourselves: exit, ``close()``, a
    caller's timeout); ``service_fault`` is False for ``cut``, so a request we cut is never
    recorded against the service. ``in_doubt``: the body may have reached the service,
    which commits what a client abandons (wire-contract.md), so what it carried may be
    stored already; False only when it cannot have been (refused, DNS, TLS, or cut before
    it was sent).
    """

    def __init__(self, message: str, reason: str = "connection_error", *, service_fault: bool = True,
                 in_doubt: bool | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.service_fault = service_fault
        self.in_doubt = reason not in NEVER_SENT if in_doubt is None else in_doubt


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


def _read(response: "requests.Response") -> Answer:
    """The answer, read whole; a 2xx whose body breaks off is kept as an incomplete answer
    (the service said it stored; batches.py and outcome.py decide what that means)."""
    try:
        return Answer(response.status_code, response.headers, response.content)
    except (requests.RequestException, OSError):
        if 200 <= response.status_code < 300:
            return Answer(response.status_code, response.headers, b"", complete=False)
        raise


def _pool_classes(sockets: "weakref.WeakSet[socket.socket]") -> dict:
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
    def __init__(self, sockets: "weakref.WeakSet[socket.socket]") -> None:
        self._sockets = sockets
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
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

    def prepared(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None) -> "requests.PreparedRequest":
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
        self._use_watchdog = watchdog
        self._base = config.base_url.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Condition()
        self._channels: weakref.WeakSet[_Channel] = weakref.WeakSet()
        self._deadlines: dict[int, tuple[float, _Channel]] = {}
        self._expired: set[int] = set()
        self._watchdog: threading.Thread | None = None
        self._aborted = False

    # -- calls ---------------------------------------------------------------

    def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Answer:
        c = self._config
        send_headers = {"Content-Type": "application/json"}
        if headers:
            send_headers.update(headers)
        return self._call("POST", path, body, send_headers, (c.connect_timeout_s, c.read_timeout_s), c.request_deadline_s)

    def get(self, path: str, timeout_s: float) -> Answer:
        return self._call("GET", path, None, None, (min(timeout_s, self._config.connect_timeout_s), timeout_s), timeout_s)

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

    def _call(self, method, path, body, headers, timeout, deadline_s) -> Answer:  # type: ignore[no-untyped-def]
        if self._aborted:
            raise NoAnswer("transport closed", "cut", service_fault=False, in_doubt=False)
        until = getattr(self._local, "until", None)
        ours = until is not None and until - time.monotonic() < deadline_s
        if ours:  # the caller's bound comes first: cut at it, and it is our cut
            deadline_s = until - time.monotonic()
            if deadline_s <= 0:
                raise NoAnswer("the caller's timeout passed before the request", "cut", service_fault=False,
                               in_doubt=False)
            timeout = (min(timeout[0], deadline_s), min(timeout[1], deadline_s))
        channel = self._channel()
        token = self._arm(channel, deadline_s)
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
            if ours and time.monotonic() >= until:  # type: ignore[operator]
                self._discard_expiry(token)
                raise NoAnswer(f"cut at the caller's timeout ({type(exc).__name__})", "cut",
                               service_fault=False) from None
            raise self._no_answer(exc, token, timeout[1], deadline_s) from None
        finally:
            self._disarm(token)

    def _no_answer(self, exc: BaseException, token: int, read_timeout_s: float, deadline_s: float) -> NoAnswer:
        if self._aborted:
            return NoAnswer(f"cut by our own exit ({type(exc).__name__})", "cut", service_fault=False)
        with self._lock:
            expired = token in self._expired
            self._expired.discard(token)
        if expired:
            return NoAnswer(f"no complete answer within the {deadline_s:g}s request deadline", "timed_out")
        reason, message = _reason(exc, read_timeout_s)
        return NoAnswer(message, reason)

    def _discard_expiry(self, token: int) -> None:
        with self._lock:
            self._expired.discard(token)

    def _channel(self) -> _Channel:
        channel = getattr(self._local, "channel", None)
        if channel is None:
            channel = _Channel(self._config)
            self._local.channel = channel
            with self._lock:
                self._channels.add(channel)
        return channel

    # -- deadlines and abort ---------------------------------------------------

    def _arm(self, channel: _Channel, deadline_s: float) -> int:
        token = threading.get_ident()
        with self._lock:
            self._deadlines[token] = (time.monotonic() + deadline_s, channel)
            if self._watchdog is None and self._use_watchdog:
                self._watchdog = threading.Thread(target=self._watch, name="pattern_track-deadline", daemon=True)
                self._watchdog.start()
            self._lock.notify()
        return token

    def _disarm(self, token: int) -> None:
        with self._lock:
            self._deadlines.pop(token, None)

    @property
    def aborted(self) -> bool:
        return self._aborted

    def _watch(self) -> None:
        with self._lock:
            while not self._aborted:
                now = time.monotonic()
                expired = [t for t, (d, _) in self._deadlines.items() if d <= now]
                for token in expired:
                    _, channel = self._deadlines.pop(token)
                    self._expired.add(token)
                    log.warning("a request passed its deadline (request_deadline_s %.1f, or the caller's "
                                "timeout); aborting it", self._config.request_deadline_s)
                    channel.shutdown_sockets()
                nearest = min((d for d, _ in self._deadlines.values()), default=None)
                self._lock.wait(None if nearest is None else max(nearest - now, 0.01))

    def abort(self) -> None:
        """Fail every request in flight now and refuse new ones (used at exit)."""
        with self._lock:
            self._aborted = True
            channels = list(self._channels)
            self._lock.notify_all()
        for channel in channels:
            channel.shutdown_sockets()

    def close(self) -> None:
        self.abort()
        for channel in list(self._channels):
            try:
                channel.session.close()
            except Exception:  # closing is best effort
                pass
