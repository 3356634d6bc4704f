"""Pattern events as the service accepts them (see wire-contract.md).

``build()`` turns ``track()`` arguments into a checked wire dict and its JSON text, or
raises ``InvalidEvent`` with a short reason that becomes a counted drop. Everything the
service would reject as a contract error (400 ``detail``, 422) is caught here, so what
leaves the process is valid and one bad event cannot sink a batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

__all__ = [
    "EDGE_TYPES", "EVENT_TYPES", "FIELDS", "InvalidEvent", "TRANSFORMATION_TYPES",
    "build", "encode", "event_id_of", "language_for_path", "new_event_id", "pattern_id_for",
]

EVENT_TYPES = frozenset({
    "pattern_created", "pattern_modified", "pattern_merged", "pattern_applied",
    "pattern_deprecated", "pattern_forked", "pattern_validated",
})
EDGE_TYPES = frozenset({
    "derived_from", "modified_from", "merged_from", "replaced_by", "inspired_by", "deprecated_by",
})
TRANSFORMATION_TYPES = frozenset({
    "refactor", "enhancement", "bugfix", "merge", "optimization", "simplification",
})
#: Wire fields ``track()`` accepts, with the service's length limit (None: no limit).
FIELDS: dict[str, int | None] = {
    "pattern_id": 255, "pattern_name": 255, "pattern_type": 100, "pattern_version": 50,
    "tool_name": 255, "file_path": None, "language": 50, "pattern_data": None,
    "parent_pattern_ids": None, "edge_type": None, "transformation_type": None,
    "reason": None, "triggered_by": 100,
}
_NEEDS_DATA = {"pattern_created", "pattern_validated"}
_NEEDS_PARENT = {"pattern_modified", "pattern_forked"}
#: The key under pattern_data that carries the event's stable id (stored verbatim).
EVENT_ID_KEY = "event_id"

_EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript",
    ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".rb": "ruby",
    ".php": "php", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp",
    ".cs": "csharp", ".swift": "swift", ".scala": "scala", ".sh": "shell", ".bash": "shell",
    ".sql": "sql", ".md": "markdown", ".json": "json", ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml", ".html": "html", ".css": "css", ".ipynb": "python", ".lua": "lua",
    ".r": "r", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell",
    ".ml": "ocaml", ".zig": "zig", ".vue": "vue", ".svelte": "svelte",
}

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class InvalidEvent(ValueError):
    """The event would be refused by the service; ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def language_for_path(path: str | None) -> str | None:
    """The language a file's extension names, or ``None`` when unknown."""
    if not path:
        return None
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower())


def pattern_id_for(code: str, language: str | None, pattern_type: str | None) -> str:
    """The original scheme, kept so ids match what existing users stored.

    ``"{language}-{pattern_type}-" + sha256("{code}:{language}:{pattern_type}")[:12]``,
    with missing values as ``""`` inside the hash and ``unknown``/``code`` in the prefix.
    """
    digest = hashlib.sha256(f"{code}:{language or ''}:{pattern_type or ''}".encode("utf-8", "surrogatepass"))
    return f"{language or 'unknown'}-{pattern_type or 'code'}-{digest.hexdigest()[:12]}"


def new_event_id() -> str:
    """128 random bits as hex: unique across processes and machines, cheaper than uuid4."""
    return os.urandom(16).hex()


def build(event_type: Any, fields: Mapping[str, Any], *, triggered_by: str) -> dict:
    """Check one event and return its wire dict, with a fresh id in ``pattern_data``.

    Raises ``InvalidEvent`` for anything the service would refuse.
    """
    if event_type not in EVENT_TYPES:
        raise InvalidEvent("invalid_event_type", f"unknown event_type {str(event_type)[:80]!r}")
    unknown = [k for k in fields if k not in FIELDS]
    if unknown:
        raise InvalidEvent("unknown_field", f"unknown field(s) {', '.join(map(str, unknown))[:200]}")
    event: dict[str, Any] = {"event_type": event_type}
    for name, limit in FIELDS.items():
        value = fields.get(name)
        if value is None:
            continue
        if limit is not None or name in ("file_path", "reason", "edge_type", "transformation_type"):
            if not isinstance(value, str):
                raise InvalidEvent("invalid_field", f"{name} must be a string")
            if limit is not None and len(value) > limit:
                raise InvalidEvent("field_too_long", f"{name} is longer than {limit} characters")
        event[name] = value
    pattern_id = event.get("pattern_id")
    if not pattern_id or not pattern_id.strip():
        raise InvalidEvent("missing_pattern_id", "pattern_id is required")
    edge = event.get("edge_type")
    if edge is not None and edge not in EDGE_TYPES:
        raise InvalidEvent("invalid_edge_type", f"edge_type {edge[:40]!r} is not one of the service's values")
    transformation = event.get("transformation_type")
    if transformation is not None and transformation not in TRANSFORMATION_TYPES:
        raise InvalidEvent("invalid_transformation_type", f"transformation_type {transformation[:40]!r} is not valid")
    parents = event.get("parent_pattern_ids", [])
    if not isinstance(parents, (list, tuple)) or not all(isinstance(p, str) and p for p in parents):
        raise InvalidEvent("invalid_field", "parent_pattern_ids must be a list of non-empty strings")
    event["parent_pattern_ids"] = list(parents)
    if event_type in _NEEDS_PARENT and not parents:
        raise InvalidEvent("missing_parent", f"{event_type} needs parent_pattern_ids")
    if event_type == "pattern_merged" and len(parents) < 2:
        raise InvalidEvent("missing_parent", "pattern_merged needs at least two parent_pattern_ids")
    data = event.get("pattern_data", {})
    if not isinstance(data, Mapping):
        raise InvalidEvent("invalid_field", "pattern_data must be a dict")
    if event_type in _NEEDS_DATA and not data:
        raise InvalidEvent("empty_pattern_data", f"{event_type} needs a non-empty pattern_data")
    data = dict(data)
    data[EVENT_ID_KEY] = new_event_id()
    event["pattern_data"] = data
    # The service stores an omitted language as "python": always send what we know.
    if "language" not in event:
        event["language"] = language_for_path(event.get("file_path"))
    event.setdefault("triggered_by", triggered_by)
    return event


def event_id_of(event: Mapping[str, Any]) -> str | None:
    data = event.get("pattern_data")
    return data.get(EVENT_ID_KEY) if isinstance(data, Mapping) else None


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON; ``InvalidEvent`` if JSON cannot carry it."""
    try:
        return _dumps(event).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent("invalid_unicode", "text with lone surrogates cannot be sent") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent("not_json", f"not JSON-serialisable: {type(exc).__name__}") from None
