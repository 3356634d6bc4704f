"""Pattern events as the service accepts them (see wire-contract.md).

``build()`` turns ``track()`` arguments into a checked wire dict and its JSON text, or
raises ``InvalidEvent`` with a short reason that becomes a counted drop. Everything the
service would reject as a contract error (400 ``detail``, 422) is caught here, so what
leaves the process is valid and one bad event cannot sink a batch.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping

# JSON and SHA-256 without importing json or hashlib (to_json re-exported: services.py uses it).
from .codec import sha256, to_json, to_json_unicode as _dumps_utf8

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "EDGE_TYPES", "EVENT_TYPES", "FIELDS", "InvalidEvent", "TRANSFORMATION_TYPES",
    "build", "encode", "event_id_from", "event_id_of", "language_for_path", "new_event_id", "pattern_id_for", "to_json",
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
#: Fields that must be strings, with their length limit (0: none).
_TEXT = {name: limit or 0 for name, limit in FIELDS.items() if name not in ("pattern_data", "parent_pattern_ids")}
_NEEDS_DATA = {"pattern_created", "pattern_validated"}
_NEEDS_PARENT = {"pattern_modified", "pattern_forked"}
_NODE_ONLY = {"pattern_applied", "pattern_deprecated"}
_NODE_ONLY_FIELDS = ("file_path", "tool_name", "language")
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

class InvalidEvent(ValueError):
    """The event would be refused by the service; ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _shape(value: Any) -> str:
    """What a refused value is, for logs: its type and size, never its content (it may be code)."""
    try:
        return f"{type(value).__name__} of {len(value)}"
    except TypeError:
        return type(value).__name__


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
    digest = sha256(f"{code}:{language or ''}:{pattern_type or ''}".encode("utf-8", "surrogatepass"))
    return f"{language or 'unknown'}-{pattern_type or 'code'}-{digest.hexdigest()[:12]}"


class _Ids:
    """Event ids: 64 random bits per process, then a 64-bit counter; 32 hex digits.

    As unique as uuid4 across processes and machines, but ~10x cheaper and, unlike
    ``os.urandom`` per event, never releases the GIL on ``track()``'s path. A forked
    child draws a new prefix (tracker.py resets it after fork).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_ids = _Ids()
new_event_id = _ids.next
reset_event_ids = _ids.reset


def build(event_type: Any, fields: Mapping[str, Any], *, triggered_by: str) -> dict[str, Any]:
    """Check one event and return its wire dict, with a fresh id in ``pattern_data``.

    Raises ``InvalidEvent`` for anything the service would refuse. On ``track()``'s hot
    path: one pass over the given fields, no JSON, no hashing.
    """
    if type(event_type) is not str or event_type not in EVENT_TYPES:
        raise InvalidEvent("invalid_event_type",
                           f"event_type is not one of the service's values ({_shape(event_type)})")
    event: dict[str, Any] = {"event_type": event_type}
    for name, value in fields.items():
        if value is None:
            continue
        if name in _TEXT:
            if not isinstance(value, str):
                raise InvalidEvent("invalid_field", f"{name} must be a string")
            limit = _TEXT[name]
            if limit and len(value) > limit:
                raise InvalidEvent("field_too_long", f"{name} is longer than {limit} characters")
        elif name not in FIELDS:
            raise InvalidEvent("unknown_field", f"unknown field ({_shape(name)})")
        event[name] = value
    pattern_id = event.get("pattern_id")
    if not pattern_id or pattern_id.isspace():
        raise InvalidEvent("missing_pattern_id", "pattern_id is required")
    edge = event.get("edge_type")
    if edge is not None and edge not in EDGE_TYPES:
        raise InvalidEvent("invalid_edge_type", f"edge_type is not one of the service's values ({_shape(edge)})")
    transformation = event.get("transformation_type")
    if transformation is not None and transformation not in TRANSFORMATION_TYPES:
        raise InvalidEvent("invalid_transformation_type",
                           f"transformation_type is not one of the service's values ({_shape(transformation)})")
    parents = event.get("parent_pattern_ids", ())
    if type(parents) not in (list, tuple) or not all(type(p) is str and p for p in parents):
        raise InvalidEvent("invalid_field", "parent_pattern_ids must be a list of non-empty strings")
    event["parent_pattern_ids"] = list(parents)
    if event_type in _NEEDS_PARENT and not parents:
        raise InvalidEvent("missing_parent", f"{event_type} needs parent_pattern_ids")
    if event_type == "pattern_merged" and len(parents) < 2:
        raise InvalidEvent("missing_parent", "pattern_merged needs at least two parent_pattern_ids")
    data = event.get("pattern_data")
    if data is None:
        data = {}
    elif type(data) is not dict and not isinstance(data, Mapping):
        raise InvalidEvent("invalid_field", "pattern_data must be a dict")
    if event_type in _NEEDS_DATA and not data:
        raise InvalidEvent("empty_pattern_data", f"{event_type} needs a non-empty pattern_data")
    data = dict(data)  # a snapshot: later changes by the caller do not leak in
    if event_type in _NODE_ONLY:
        # The service keeps these top-level fields on nodes only (wire-contract.md):
        # where a pattern was applied survives only inside pattern_data.
        for name in _NODE_ONLY_FIELDS:
            if name in event:
                data.setdefault(name, event[name])
    data.pop(EVENT_ID_KEY, None)  # ours goes last, where event_id_from() finds it
    data[EVENT_ID_KEY] = new_event_id()
    event["pattern_data"] = data
    # The service stores an omitted language as "python": always send what we know.
    if "language" not in event:
        event["language"] = language_for_path(event.get("file_path"))
    if "triggered_by" not in event:
        event["triggered_by"] = triggered_by
    return event


_ID_MARK = b'"event_id":"'


def event_id_from(event: bytes) -> str:
    """The id ``build`` put last in ``pattern_data`` of a serialised event (cheap: no JSON
    parse), or ``"?"``."""
    at = event.rfind(_ID_MARK)
    if at < 0:
        return "?"
    start = at + len(_ID_MARK)
    return event[start:event.find(b'"', start)].decode("ascii", "replace")


def event_id_of(event: Mapping[str, Any]) -> str | None:
    data = event.get("pattern_data")
    return data.get(EVENT_ID_KEY) if isinstance(data, dict) else None


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as compact ASCII JSON; ``InvalidEvent`` if JSON or the service cannot carry it
    (``not_json``, ``invalid_unicode``, ``nul_character``).

    ASCII output is the C encoder's fastest path. It would escape a lone surrogate
    (which the service's database cannot store) instead of failing, so text containing
    escaped surrogates is checked once more the strict way; that is rare (emoji).
    """
    try:
        text = to_json(event)
        if "\\u0000" in text:  # PostgreSQL cannot store NUL: the service refuses it for good
            raise InvalidEvent("nul_character", "text contains a NUL character, which the service cannot store")
        if "\\ud" in text:
            _dumps_utf8(event).encode("utf-8")
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidEvent("invalid_unicode", "text with lone surrogates cannot be sent") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidEvent("not_json", f"not JSON-serialisable: {type(exc).__name__}") from None
