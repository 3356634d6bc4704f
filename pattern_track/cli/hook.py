"""The Claude Code hook: one hook JSON object on stdin in, pattern events to the spool out.

``run()`` never raises and never writes to stdout: the host injects stdout into the
model's context or parses it as control output, and treats any non-zero exit as an
error shown on every tool call. It reads stdin to EOF (the host's write of a large
payload fails if we stop early), writes events to the spool (stdlib only: no requests,
no diskcache, no SQLite lock to wait on), and starts a detached drainer when none runs.

What becomes an event is payload.py's (``events_for``, re-exported here).
"""

from __future__ import annotations

import json
import os
import sys

from .. import event as _event, logs
from ..config import Config
from ..errors import CacheError  # no cost: config (above) imports errors already
from ..store import services
from ..store.spool import Spool
from .payload import FileState, events_for

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any, BinaryIO

__all__ = ["FileState", "events_for", "run"]

log = logs.get(__name__)

#: The longest the hook waits for its payload (the host's own limit is 60 s).
STDIN_BOUND_S = 5.0


def read_payload(stream: BinaryIO, bound_s: float = STDIN_BOUND_S) -> bytes:
    """Read stdin until EOF, one complete JSON document, or ``bound_s`` seconds.

    Some hosts write the whole payload and never close the pipe; waiting for EOF there
    would wedge the hook until it is killed, and keep nothing.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream.read()  # not a real file (tests): read it whole
    import select
    import time

    deadline = time.monotonic() + bound_s
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            log.warning("hook input incomplete after %.0f s (%d bytes); using what arrived",
                        bound_s, sum(map(len, chunks)))
            return b"".join(chunks)
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        if chunk.rstrip().endswith(b"}"):
            data = b"".join(chunks)
            try:
                json.loads(data)
                return data  # one complete document: the host has written it all
            except (ValueError, UnicodeDecodeError):
                chunks = [data]


def usable_cache_dir(preferred: str) -> str:
    """``preferred`` if it can be used, else a private per-user directory in the temp dir
    (0700, owner checked). Raises ``CacheError`` if neither can."""
    return next(_cache_dirs(preferred))


def _cache_dirs(preferred: str) -> Iterator[str]:
    """The cache directories to try, in order: ``preferred``, then the private per-user
    one in the temp dir; each made private (0700) or skipped with a log line."""
    from ..store.cachedir import prepare_directory, temp_fallback

    for candidate in (preferred, temp_fallback()):
        try:
            yield prepare_directory(candidate)
        except (CacheError, OSError) as exc:
            log.warning("cache directory %s unusable (%s)", candidate, type(exc).__name__)
    raise CacheError("no usable cache directory (the configured one and the temp dir fallback both failed)")


class _Unkept(CacheError):
    """No cache directory could keep the hook's events: ``events`` (encoded) are to be sent now."""

    def __init__(self, events: list[bytes]) -> None:
        super().__init__("no cache directory could keep the hook's events")
        self.events = events


def _keep(config: Config, payload: Any) -> tuple[str, str, list[bytes]] | None:
    """Turn the payload into events and write them to the spool of the first cache
    directory that takes them: ``(cache_dir, store, events)``, or None when the payload is
    not ours. Raises ``_Unkept`` (a ``CacheError`` with the events) when none does."""
    events: list[bytes] | None = None
    for cache_dir in _cache_dirs(config.resolved_cache_dir):
        try:
            # The service's own store (services.py): its per-file memory (a parent id only
            # this service knows), its spool, and only its drainer or sync delivers these.
            store = services.prepare(services.service_dir(cache_dir, config.base_url), config.base_url)
            if events is None:
                events = _encoded(config, events_for(payload, FileState(store)))
                if not events:
                    return None
            Spool(store).write(events)
            return cache_dir, store, events
        except (CacheError, OSError) as exc:  # read-only, full, unsafe: the next one
            log.warning("cannot keep hook events in %s (%s)", cache_dir, type(exc).__name__)
    if events is None:
        events = _encoded(config, events_for(payload, None))
    raise _Unkept(events)


def _encoded(config: Config, events: list[dict]) -> list[bytes]:
    encoded = [_event.encode(item) for item in events]
    return [data for data in encoded if len(data) <= config.max_event_bytes]


def run(stdin: BinaryIO | None = None, environ: Mapping[str, str] | None = None, *, spawn: bool = True) -> int:
    """Handle one hook call. Always returns 0; never writes to stdout or raises.

    Events go to the spool of the configured cache directory, else of the per-user temp
    directory; when neither can be written (a read-only or full disk), they are sent to
    the service now, within ``exit_timeout_s`` (delivery/direct.py), and what it does not
    take is lost and logged: nothing else could keep them."""
    try:
        raw = read_payload(stdin if stdin is not None else sys.stdin.buffer)
    except Exception:
        return 0
    try:
        config = Config.from_env(environ)
        if not config.enabled:
            return 0
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("hook input is not JSON (%d bytes); ignored", len(raw))
            return 0
        try:
            kept = _keep(config, payload)
        except CacheError as exc:
            from ..delivery.direct import deliver_now

            events = exc.events if isinstance(exc, _Unkept) else []
            sent = deliver_now(config, events, timeout_s=config.exit_timeout_s) if events else 0
            if sent < len(events):
                log.error("%d hook events lost: no cache directory could keep them and the service did not "
                          "take them", len(events) - sent)
            return 0
        if kept is None or not spawn:
            return 0
        cache_dir, store, _ = kept
        from ..process.launcher import ensure_drainer

        env = dict(os.environ if environ is None else environ)
        env["PATTERN_TRACK_BASE_URL"] = config.base_url  # the URL this hook used, whatever it was named
        ensure_drainer(cache_dir, env, service_dir=store)
    except Exception as exc:  # full disk, unsafe directory, anything: the host must not see it
        log.warning("hook failed: %s", type(exc).__name__)
    return 0
