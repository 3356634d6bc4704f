"""What one Claude Code hook payload stands for: the pattern events, and each file's last pattern.

What becomes an event (PostToolUse of Write, Edit, MultiEdit, NotebookEdit): the file's
content after the tool is the pattern. If we tracked the file's previous content the
event is a modification of it; if the host gave us the original content of a file we had
not seen, that original is recorded as a creation first, so the modification has a
parent the service knows; otherwise it is a creation. Everything else is ignored.
Standard library only: the hook imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .. import codec, event as _event, logs

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FileState", "MAX_CODE_CHARS", "events_for"]

log = logs.get("pattern_track.cli.hook")  # its name from before this module was split out

#: pattern_data keeps at most this much code; the id is computed from all of it.
MAX_CODE_CHARS = 64 * 1024
_TOOLS = {"Write", "Edit", "MultiEdit", "NotebookEdit"}
_TRUE = {True, "true", "True", "1"}


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
                    code_sha256=codec.sha256(code.encode("utf-8", "surrogatepass")).hexdigest())
    return data


class FileState:
    """The pattern id each file had last time we saw it: one small file per path."""

    def __init__(self, cache_dir: str) -> None:
        self.directory = os.path.join(cache_dir, "files")

    def _path(self, file_path: str) -> str:
        digest = codec.sha256(file_path.encode("utf-8", "surrogatepass")).hexdigest()[:32]
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
    response = payload.get("tool_response")
    if not isinstance(response, Mapping):
        response = {}
    if tool not in _TOOLS or not isinstance(tool_input, Mapping):
        return []
    file_path = tool_input.get("file_path") or tool_input.get("notebook_path") or response.get("filePath")
    if not isinstance(file_path, str) or not file_path:
        return []
    original, content = _content_after(tool, tool_input, response)
    if content is None:
        return []
    language = _event.language_for_path(file_path)
    context = {k: payload.get(k) for k in ("session_id", "tool_use_id", "cwd", "agent_id")
               if isinstance(payload.get(k), str)}
    common = dict(pattern_type="code", language=language, file_path=file_path, tool_name=tool,
                  pattern_name=os.path.basename(file_path)[:255])
    new_id = _event.pattern_id_for(content, language, None)
    parent = files.get(file_path) if files is not None and tool != "NotebookEdit" else None
    out: list[dict] = []
    if parent is None and original is not None and original != content and original.strip():
        parent = _event.pattern_id_for(original, language, None)
        data = dict(_code_data(original), **context, source="original_file")
        out.append(_event.build("pattern_created", dict(common, pattern_id=parent, pattern_version="1.0.0",
                                                        pattern_data=data), triggered_by=triggered_by))
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
