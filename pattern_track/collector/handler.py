"""The HTTP layer: a threading server that reads requests and writes the replies it is given
(whole, a byte at a time, cut short, or as a connection reset instead).

It knows nothing of routes or faults: ``Server`` is handed a ``dispatch`` callable that
turns ``(method, target, headers, body)`` into a ``Reply`` (None: hang up without one),
a ``count`` callable told of every reply sent, and the ``stopping`` event that ends a
trickled answer early.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .contract import DETAILS, Answer, Reply, json_reply

__all__ = ["MAX_BODY_BYTES", "Server"]

logger = logging.getLogger(__name__)

#: Larger bodies get a 413; a batch of 1000 real events stays far below.
MAX_BODY_BYTES = 16 * 1024 * 1024

Dispatch = Callable[[str, str, Any, bytes], "Reply | None"]  # None: hang up


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request must hold neither the process nor stop()
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retries)

    def __init__(self, address: tuple[str, int], dispatch: Dispatch, count: Callable[[Reply], None],
                 stopping: threading.Event) -> None:
        super().__init__(address, _Handler)
        self.dispatch, self.count, self.stopping = dispatch, count, stopping
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
    server: Server

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

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("collector %s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        server = self.server
        try:
            reply = server.dispatch(self.command, self.path, self.headers, self._read_body())
        except Answer as exc:  # the request itself is unreadable
            self.close_connection = True
            reply = json_reply(exc.status, exc.doc)
        except Exception:
            logger.exception("collector failed on %s %s", self.command, self.path)
            reply = json_reply(500, {"detail": DETAILS[500]})
        if reply is None:
            self.close_connection = True
            return
        server.count(reply)
        if reply.reset:
            self._reset()
            return
        self.close_connection = self.close_connection or reply.close
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
            if reply.cut_at is not None:  # cut short, as if the line dropped: no Connection: close
                self.wfile.write(reply.body[:reply.cut_at])
                self.close_connection = True
                return
            if reply.trickle_s is None:
                self.wfile.write(reply.body)
                return
            for i in range(len(reply.body)):
                if server.stopping.wait(reply.trickle_s):
                    self.close_connection = True
                    return
                self.wfile.write(reply.body[i:i + 1])
        except OSError:
            self.close_connection = True  # the client went away

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _reset(self) -> None:
        """Abort the connection: linger on with timeout 0, then close, so the peer gets a TCP RST.

        The socket is closed here, before ``shutdown_request`` could send a FIN first.
        """
        self.close_connection = True
        conn = self.connection
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.close(conn.detach())
        except OSError:
            pass  # already gone

    def _read_body(self) -> bytes:
        """The body by Content-Length (none without one); a bad length is a 400 or a 413."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise Answer(411, {"detail": "Length Required"})
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            raise Answer(400, {"detail": "Invalid Content-Length header"})
        if int(length) > MAX_BODY_BYTES:
            raise Answer(413, {"detail": "Request body too large"})
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            raise Answer(400, {"detail": "Incomplete request body"})
        return body
