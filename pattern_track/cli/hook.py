"""The Claude Code hook: one hook JSON object on stdin in, pattern events to the spool out.

``run()`` never raises and never writes to stdout: the host injects stdout into the
model's context or parses it as control output, and treats any non-zero exit as an
error shown on every tool call. It reads stdin to EOF (the host's write of a large
payload fails if we stop early), writes events to the spool (stdlib only: no requests,
no diskcache, no SQLite lock to wait on), and starts a detached drainer when none runs.

What becomes an event (PostToolUse of Write, Edit, MultiEdit, NotebookEdit): the file's
content after the tool is the pattern. If we tracked the file's previous content the
event is a modification of it; if the host gave us the original content of a file we had
not seen, that original is recorded as a creation first, so the modification has a
parent the service knows; otherwise it is a creation. Everything else is ignored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

from .. import logs
from .. import event as _event
from ..store import services
from ..config import Config
from ..store.spool import Spool

__all__ = ["events_for", "run"]

log = logs.get(__name__)

#: pattern_data keeps at most this much code; the id is computed from all of it.
MAX_CODE_CHARS = 64 * 1024
_TOOLS = {"Write", "Edit", "MultiEdit", "NotebookEdit"}
_TRUE = {True, "true", "True", "1", 1}


def _apply_edit(text: str, old: Any, new: Any, replace_all: Any) -> str | None:
    if not isinstance(old, str) or not isinstance(new, str) or not old or old not in text:
        return None
    return text.replace(old, new) if replace_all in _TRUE else text.replace(old, new, 1)


def _content_after(tool: str, tool_input: Mapping, response: Mapping) -> tuple[str | None, str | None]:
    """(original, new) content of the file, as far as the payload tells."""
    original = response.get("originalFile")
    if not isinstance(original, str):
        original = response.get("originalFileContents")
    original = original if isinstance(original, str) else None
    if tool == "Write":
        content = tool_input.get("content")
        return original, content if isinstance(content, str) else None
    if tool == "Edit" and original is not None:
        return original, _apply_edit(original, tool_input.get("old_string"), tool_input.get("new_string"),
                                     tool_input.get("replace_all"))
    if tool == "MultiEdit" and original is not None and isinstance(tool_input.get("edits"), list):
        text: str | None = original
        for edit in tool_input["edits"]:
            if not isinstance(edit, Mapping) or text is None:
                return original, None
            text = _apply_edit(text, edit.get("old_string"), edit.get("new_string"), edit.get("replace_all"))
        return original, text
    if tool == "NotebookEdit":
        source = tool_input.get("new_source")
        return None, source if isinstance(source, str) and source else None
    return original, None


def _code_data(code: str) -> dict:
    data: dict[str, Any] = {"code": code[:MAX_CODE_CHARS]}
    if len(code) > MAX_CODE_CHARS:
        data.update(code_truncated=True, code_chars=len(code),
                    code_sha256=_event.sha256(code.encode("utf-8", "surrogatepass")).hexdigest())
    return data


class FileState:
    """The pattern id each file had last time we saw it: one small file per path."""

    def __init__(self, cache_dir: str) -> None:
        self.directory = os.path.join(cache_dir, "files")

    def _path(self, file_path: str) -> str:
        digest = _event.sha256(file_path.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return os.path.join(self.directory, digest)

    def get(self, file_path: str) -> str | None:
        try:
            with open(self._path(file_path), encoding="utf-8") as handle:
                return handle.read().strip() or None
        except (OSError, ValueError):
            return None

    def set(self, file_path: str, pattern_id: str) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self._path(file_path)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(pattern_id)
        os.replace(tmp, path)


def events_for(payload: Any, files: FileState | None, *, triggered_by: str = "claude-code-hook") -> list[dict]:
    """The wire events one hook payload stands for (empty when it is not ours)."""
    if not isinstance(payload, Mapping) or payload.get("hook_event_name") != "PostToolUse":
        return []
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    response = payload.get("tool_response") if isinstance(payload.get("tool_response"), Mapping) else {}
    if tool not in _TOOLS or not isinstance(tool_input, Mapping):
        return []
    file_path = tool_input.get("file_path") or tool_input.get("notebook_path") or response.get("filePath")
    if not isinstance(file_path, str) or not file_path:
        return []
    original, content = _content_after(tool, tool_input, response)
    if content is None:
        return []
    language = _event.language_for_path(file_path)
    context = {k: payload.get(k) for k in ("session_id", "tool_use_id", "cwd", "agent_id") if isinstance(payload.get(k), str)}
    common = dict(pattern_type="code", language=language, file_path=file_path, tool_name=tool,
                  pattern_name=os.path.basename(file_path)[:255])
    new_id = _event.pattern_id_for(content, language, None)
    parent = files.get(file_path) if files is not None and tool != "NotebookEdit" else None
    out: list[dict] = []
    if parent is None and original is not None and original != content and original.strip():
        parent = _event.pattern_id_for(original, language, None)
        out.append(_event.build("pattern_created", dict(common, pattern_id=parent, pattern_version="1.0.0",
                                                        pattern_data=dict(_code_data(original), **context, source="original_file")),
                                triggered_by=triggered_by))
    if parent == new_id:
        return out  # the tool left the content as it was
    if parent is None:
        if not content.strip():
            return out
        out.append(_event.build("pattern_created", dict(common, pattern_id=new_id, pattern_version="1.0.0",
                                                        pattern_data=dict(_code_data(content), **context)),
                                triggered_by=triggered_by))
    else:
        out.append(_event.build("pattern_modified", dict(
            common, pattern_id=new_id, pattern_version="1.1.0", parent_pattern_ids=[parent],
            edge_type="modified_from", transformation_type="refactor",
            reason=f"{tool} by Claude Code", pattern_data=dict(_code_data(content), **context)),
            triggered_by=triggered_by))
    if files is not None and tool != "NotebookEdit":
        try:
            files.set(file_path, new_id)
        except OSError as exc:
            log.warning("could not remember the pattern of a file: %s", exc)
    return out


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
    from ..errors import CacheError
    from ..store.cachedir import prepare_directory, temp_fallback

    for candidate in (preferred, temp_fallback()):
        try:
            yield prepare_directory(candidate)
        except (CacheError, OSError) as exc:
            log.warning("cache directory %s unusable (%s)", candidate, type(exc).__name__)
    raise CacheError("no usable cache directory (the configured one and the temp dir fallback both failed)")


def _keep(config: Config, payload: Any) -> tuple[str, str, list[bytes]] | None:
    """Turn the payload into events and write them to the spool of the first cache
    directory that takes them: ``(cache_dir, store, events)``, or None when the payload is
    not ours. Raises ``CacheError`` (with the events on ``.events``) when none does."""
    from ..errors import CacheError

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
    error = CacheError("no cache directory could keep the hook's events")
    if events is None:
        events = _encoded(config, events_for(payload, None))
    error.events = events  # type: ignore[attr-defined]
    raise error


def _encoded(config: Config, events: list[dict]) -> list[bytes]:
    encoded = [_event.encode(item) for item in events]
    return [data for data in encoded if len(data) <= config.max_event_bytes]


def run(stdin: BinaryIO | None = None, environ: Mapping[str, str] | None = None, *, spawn: bool = True) -> int:
    """Handle one hook call. Always returns 0; never writes to stdout or raises.

    Events go to the spool of the configured cache directory, else of the per-user temp
    directory; when neither can be written (a read-only or full disk), they are sent to
    the service now, within ``exit_timeout_s`` (delivery/direct.py), and what it does not
    take is lost and logged: nothing else could keep them."""
    from ..errors import CacheError

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

            events = getattr(exc, "events", [])
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
