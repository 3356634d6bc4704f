"""The service's request model and contract checks, and the shapes of its answers.

Everything here is a value or a pure function: the routes' constants, the request model
FastAPI applies (types, required fields, defaults, the 422 it gives), the handler's own
checks (the 400 ``{detail}``), and the exceptions that carry an answer out of a route.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from http import HTTPStatus
from os import urandom
from typing import Any

__all__ = [
    "API", "Answer", "CREATIONS", "DEFAULT_PORT", "DERIVATIONS", "DETAILS", "EDGE_TYPES", "EVENT_TYPES",
    "EventFailed", "MAX_LENGTHS", "NODE_FIELDS", "NUL_IN_JSON", "NUL_IN_TEXT", "PHRASES", "Reply",
    "SERVICE_RATE_LIMIT", "TRANSFORMATION_TYPES", "contract_error", "has_nul", "json_reply", "new_id",
    "parse_body", "validate_batch", "validate_event",
]

API = "/api/pattern-traceability"
DEFAULT_PORT = 8053
#: What health reports as the budget when no rate limit is set (the real service's).
SERVICE_RATE_LIMIT = 1000

EVENT_TYPES = ("pattern_created", "pattern_modified", "pattern_merged", "pattern_applied",
               "pattern_deprecated", "pattern_forked", "pattern_validated")
EDGE_TYPES = ("derived_from", "modified_from", "merged_from", "replaced_by", "inspired_by", "deprecated_by")
TRANSFORMATION_TYPES = ("refactor", "enhancement", "bugfix", "merge", "optimization", "simplification")
CREATIONS = ("pattern_created", "pattern_validated")
DERIVATIONS = ("pattern_modified", "pattern_forked")
#: varchar limits of the real tables: a longer value fails at INSERT, per event.
MAX_LENGTHS = {"pattern_id": 255, "pattern_name": 255, "pattern_type": 100, "pattern_version": 50,
               "tool_name": 255, "language": 50, "triggered_by": 100}
#: PostgreSQL stores no NUL character: as a text parameter, or as ``\u0000`` inside jsonb.
NUL_IN_TEXT = ('invalid byte sequence for encoding "UTF8": 0x00', "CharacterNotInRepertoireError")
NUL_IN_JSON = ("unsupported Unicode escape sequence", "UntranslatableCharacterError")
NODE_FIELDS = ("pattern_id", "pattern_version", "pattern_name", "pattern_type", "language",
               "tool_name", "file_path", "pattern_data")

_REQUIRED = object()
#: The request model: field -> (JSON type, null allowed, default).
_FIELDS: dict[str, tuple[type[Any], bool, Any]] = {
    "event_type": (str, False, _REQUIRED), "pattern_id": (str, False, _REQUIRED),
    "pattern_name": (str, False, ""), "pattern_type": (str, False, "code"),
    "pattern_version": (str, False, "1.0.0"), "tool_name": (str, True, None),
    "file_path": (str, True, None), "language": (str, True, "python"),
    "pattern_data": (dict, False, {}), "parent_pattern_ids": (list, False, []),
    "edge_type": (str, True, None), "transformation_type": (str, True, None),
    "reason": (str, True, None), "triggered_by": (str, False, "api"),
}
_TYPE_ERRORS: dict[type[Any], tuple[str, str]] = {str: ("string_type", "Input should be a valid string"),
                dict: ("dict_type", "Input should be a valid dictionary"),
                list: ("list_type", "Input should be a valid list")}
_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"

PHRASES = {s.value: s.phrase for s in HTTPStatus}
#: The real service's ``detail`` for the statuses it gives on its own.
DETAILS = {500: "Internal Server Error", 503: "Database connection not available",
           504: "Tracking operation timed out"}


@dataclasses.dataclass
class Reply:
    """One answer as the handler writes it; ``trickle_s`` sends the body a byte at a time,
    ``close`` ends the connection after it, ``cut_at`` sends only that many bytes of the
    body (under the full ``Content-Length``) and closes, ``reset`` sends nothing and resets
    the connection (TCP RST)."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    trickle_s: float | None = None
    route: str = "unknown"
    close: bool = False
    cut_at: int | None = None
    reset: bool = False


_ids = itertools.count(int.from_bytes(urandom(6), "big"))


def new_id() -> str:
    """A unique id for answers (uuid4 costs more than the rest of storing an event)."""
    return f"{next(_ids):032x}"


def json_reply(status: int, doc: Any, **headers: str) -> Reply:
    return Reply(status, json.dumps(doc).encode(), headers=headers)


class Answer(Exception):
    """Stop handling the request and answer ``status`` with the JSON ``doc``."""

    def __init__(self, status: int, doc: Any) -> None:
        super().__init__(status)
        self.status, self.doc = status, doc


class EventFailed(Exception):
    """One event failed the service's way: ``{success: false, error, metadata: {error_type}}``."""

    def __init__(self, error: str, error_type: str) -> None:
        super().__init__(error)
        self.error, self.error_type = error, error_type


def _issue(kind: str, loc: list, msg: str, value: Any) -> dict:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def parse_body(headers: Any, body: bytes) -> Any:
    """Decode the body the way FastAPI does, or raise the 422 it would give."""
    if not body:
        raise Answer(422, {"detail": [_issue("missing", ["body"], "Field required", None)]})
    ctype = (headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        # FastAPI then validates the raw text against the model, which needs an object.
        raise Answer(422, {"detail": [_issue("model_attributes_type", ["body"], _NOT_AN_OBJECT,
                                             body.decode("utf-8", "replace"))]})
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        error = _issue("json_invalid", ["body", getattr(exc, "pos", 0)], "JSON decode error", {})
        raise Answer(422, {"detail": [{**error, "ctx": {"error": getattr(exc, "msg", str(exc))}}]}) from None


def validate_event(raw: Any, loc: list, issues: list) -> dict | None:
    """Apply the request model (types, required fields, defaults); unknown fields are dropped."""
    if not isinstance(raw, dict):
        issues.append(_issue("model_attributes_type", loc, _NOT_AN_OBJECT, raw))
        return None
    event: dict[str, Any] = {}
    before = len(issues)
    for name, (kind, nullable, default) in _FIELDS.items():
        value = raw.get(name, default)
        if value is _REQUIRED:
            issues.append(_issue("missing", [*loc, name], "Field required", raw))
        elif value is None and nullable:
            event[name] = None
        elif not isinstance(value, kind):
            code, msg = _TYPE_ERRORS[kind]
            issues.append(_issue(code, [*loc, name], msg, value))
        elif kind is list and not all(isinstance(item, str) for item in value):
            at = next(i for i, item in enumerate(value) if not isinstance(item, str))
            issues.append(_issue("string_type", [*loc, name, at], _TYPE_ERRORS[str][1], value[at]))
        else:
            # Never share the default {} or [] (strings and numbers need no copy).
            event[name] = value.copy() if type(value) in (dict, list) else value
    return event if len(issues) == before else None


def validate_batch(doc: Any) -> tuple[list[dict], str | None, str]:
    """The batch model: ``{events, batch_id?, processing_mode?}``, or the 422 it gives."""
    if not isinstance(doc, dict):
        raise Answer(422, {"detail": [_issue("model_attributes_type", ["body"], _NOT_AN_OBJECT, doc)]})
    issues: list = []
    checked: list[dict[str, Any]] = []  # every event, when no issue was found
    events, batch_id, mode = doc.get("events"), doc.get("batch_id"), doc.get("processing_mode", "parallel")
    if "events" not in doc:
        issues.append(_issue("missing", ["body", "events"], "Field required", doc))
    elif not isinstance(events, list):
        issues.append(_issue("list_type", ["body", "events"], _TYPE_ERRORS[list][1], events))
    else:
        for i, raw in enumerate(events):
            event = validate_event(raw, ["body", "events", i], issues)
            if event is not None:
                checked.append(event)
    if batch_id is not None and not isinstance(batch_id, str):
        issues.append(_issue("string_type", ["body", "batch_id"], _TYPE_ERRORS[str][1], batch_id))
    if mode not in ("parallel", "sequential"):
        issues.append(_issue("literal_error", ["body", "processing_mode"],
                             "Input should be 'parallel' or 'sequential'", mode))
    if issues:
        raise Answer(422, {"detail": issues})
    return checked, batch_id, mode


def has_nul(value: Any) -> bool:
    """Whether a NUL character is anywhere in a JSON value, keys included."""
    stack = [value]  # a loop, not recursion: the nesting is the client's choice
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def contract_error(event: dict) -> str | None:
    """The handler's own checks, answered 400 ``{detail}`` before anything is stored."""
    kind, parents = event["event_type"], event["parent_pattern_ids"]
    if kind not in EVENT_TYPES:
        return f"Invalid event_type '{kind}'. Must be one of: {', '.join(EVENT_TYPES)}"
    if not event["pattern_id"]:
        return "pattern_id must not be empty"
    for name, allowed in (("edge_type", EDGE_TYPES), ("transformation_type", TRANSFORMATION_TYPES)):
        if event[name] is not None and event[name] not in allowed:
            return f"Invalid {name} '{event[name]}'. Must be one of: {', '.join(allowed)}"
    if kind in CREATIONS and not event["pattern_data"]:
        return f"pattern_data must not be empty for {kind}"
    if kind in DERIVATIONS and not parents:
        return f"{kind} requires parent_pattern_ids"
    if kind == "pattern_merged" and len(parents) < 2:
        return "pattern_merged requires at least 2 parent_pattern_ids"
    return None
