"""The lineage calls of the original library: creation, modification, application, merge.

Each function here is a method of ``Tracker`` (tracker.py binds it, hence the first
parameter, ``self``): each call builds the wire event the service stores best (see
wire-contract.md: ids by the original scheme over the caller's context, several parents
as a merge, where a pattern was applied kept inside ``pattern_data``) and hands it to
``track()``. Each returns the pattern id, or None when the event was refused (counted in
``stats()["dropped"]``; a context that is not a mapping is ``bad_context``). Never raises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as _Mapping

from .. import event as _event, logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, Concatenate, ParamSpec, TypeVar

    from ..tracker import Tracker

    _P = ParamSpec("_P")
    _R = TypeVar("_R")

__all__ = ["track_pattern_application", "track_pattern_creation", "track_pattern_merge",
           "track_pattern_modification"]

log = logs.get("pattern_track.lineage")  # its name from before it moved into tracking/

_TOP_LEVEL = {"language", "file_path", "tool_name", "pattern_name", "pattern_type", "pattern_version",
              "transformation_type", "reason"}


def _contained(method: Callable[Concatenate[Tracker, _P], _R]) -> Callable[Concatenate[Tracker, _P], _R | None]:
    """The call never raises: an internal error is counted, logged, and returns None."""
    import functools

    @functools.wraps(method)
    def call(self: Tracker, /, *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        try:
            return method(self, *args, **kwargs)
        except Exception:
            self._counters.drop("internal_error")
            log.error("%s failed", method.__name__, exc_info=True)
            return None

    return call


@_contained
def track_pattern_creation(self: Tracker, code: str, context: Mapping[str, Any] | None = None, *,
                           parent_pattern_ids: Iterable[str] | None = None) -> str | None:
    """Record new ``code``; return its pattern id, or None when the event was refused.

    ``context``: a mapping (``language``, ``pattern_type``, ``file_path``, ``tool_name``,
    ``pattern_name``, ``pattern_version``; any other key goes into ``pattern_data``);
    ``parent_pattern_ids``: the patterns it derives from. The id follows the original
    scheme, ``"{language}-{pattern_type}-" + 12 hex digits`` over code, language and type
    as given (not inferred). The service ignores parents on a creation, so with one parent
    the event is sent as ``pattern_forked`` (``derived_from``) and with several as
    ``pattern_merged`` (``merged_from``, the only event type that stores an edge for
    every parent). Never raises: a refusal is counted in ``stats()["dropped"]`` (see
    ``track()``; a context that is not a mapping is ``bad_context``).
    """
    ctx = _context(self, context)
    if ctx is None:
        return None
    pattern_id, fields = _code_event(ctx, code, version="1.0.0")
    parents = list(parent_pattern_ids or [])
    if len(parents) > 1:
        # Only a merge stores an edge per parent (a fork keeps the first only).
        fields.update(parent_pattern_ids=parents, edge_type="merged_from", transformation_type="merge")
        return pattern_id if self.track("pattern_merged", **fields) else None
    if parents:
        fields.update(parent_pattern_ids=parents, edge_type="derived_from")
        return pattern_id if self.track("pattern_forked", **fields) else None
    return pattern_id if self.track("pattern_created", **fields) else None


@_contained
def track_pattern_modification(self: Tracker, pattern_id: str, new_code: str, context: Mapping[str, Any] | None = None,
                               reason: str | None = None) -> str | None:
    """Record a change of ``pattern_id`` to ``new_code``; return the new pattern id, or None.

    ``context`` as for ``track_pattern_creation`` (its ``transformation_type``, default
    ``refactor``, and ``reason`` are sent too; ``reason`` here wins over the context's).
    The new id is computed from ``new_code`` as a creation's; code that did not change
    sends nothing and is counted as ``unchanged``. Never raises: a refusal is counted in
    ``stats()["dropped"]``.
    """
    ctx = _context(self, context)
    if ctx is None:
        return None
    new_id, fields = _code_event(ctx, new_code, version="1.1.0")
    if new_id == pattern_id:
        self._counters.drop("unchanged")
        log.debug("modification of %s left the code unchanged; not sent", pattern_id)
        return None
    fields.update(parent_pattern_ids=[pattern_id], edge_type="modified_from",
                  transformation_type=ctx.get("transformation_type") or "refactor",
                  reason=reason if reason is not None else ctx.get("reason"))
    return new_id if self.track("pattern_modified", **fields) else None


@_contained
def track_pattern_application(self: Tracker, pattern_id: str, context: Mapping[str, Any] | None = None) -> str | None:
    """Record that ``pattern_id`` was applied (reused); return ``pattern_id``, or None.

    ``context`` as for ``track_pattern_creation``; where it was applied (``file_path``,
    ``tool_name``, ``language``) is kept inside ``pattern_data``, the only place the
    service stores it for this event type. Never raises: a refusal is counted in
    ``stats()["dropped"]``.
    """
    ctx = _context(self, context)
    if ctx is None:
        return None
    data = {k: v for k, v in ctx.items() if k not in _TOP_LEVEL}
    data.setdefault("applied", True)
    fields = dict(pattern_id=pattern_id, pattern_data=data,
                  language=ctx.get("language") or _event.language_for_path(ctx.get("file_path")),
                  file_path=ctx.get("file_path"), tool_name=ctx.get("tool_name"),
                  reason=ctx.get("reason") or "Pattern reused")
    return pattern_id if self.track("pattern_applied", **fields) else None


@_contained
def track_pattern_merge(self: Tracker, source_pattern_ids: Iterable[str], merged_code: str,
                        context: Mapping[str, Any] | None = None, reason: str | None = None) -> str | None:
    """Record a merge of ``source_pattern_ids`` (two or more) into ``merged_code``; return
    the new pattern id, or None.

    ``context`` as for ``track_pattern_creation``; ``reason`` here wins over the context's.
    The sources are also listed in ``pattern_data["merged_from"]``. Never raises: fewer
    than two sources, like any refusal, is counted in ``stats()["dropped"]``
    (``missing_parent``).
    """
    ctx = _context(self, context)
    if ctx is None:
        return None
    sources = list(source_pattern_ids)
    new_id, fields = _code_event(ctx, merged_code, version="2.0.0")
    fields["pattern_data"]["merged_from"] = sources
    fields.update(parent_pattern_ids=sources, edge_type="merged_from", transformation_type="merge",
                  reason=reason if reason is not None else ctx.get("reason"))
    return new_id if self.track("pattern_merged", **fields) else None


def _context(self: Tracker, context: Any) -> dict[str, Any] | None:
    """The caller's context as a dict; anything but a mapping is a counted refusal."""
    if context is None:
        return {}
    if isinstance(context, _Mapping):
        return dict(context)
    self._counters.drop("bad_context")
    log.warning("event refused (bad_context): context must be a mapping, got %s", type(context).__name__)
    return None


def _code_event(ctx: dict[str, Any], code: str, *, version: str) -> tuple[str, dict[str, Any]]:
    """(pattern id, wire fields) for ``code``: the id by the original formula over the
    caller's context; the wire ``language`` inferred from the path when not given."""
    language = ctx.get("language") or _event.language_for_path(ctx.get("file_path"))
    pattern_type = ctx.get("pattern_type") or "code"
    pattern_id = _event.pattern_id_for(code, ctx.get("language"), ctx.get("pattern_type"))
    return pattern_id, _fields_from(ctx, pattern_id, language, pattern_type, code, version=version)


def _fields_from(ctx: dict[str, Any], pattern_id: str, language: str | None, pattern_type: str,
                 code: str, *, version: str) -> dict[str, Any]:
    data = {k: v for k, v in ctx.items() if k not in _TOP_LEVEL}
    data["code"] = code
    file_path = ctx.get("file_path")
    name = ctx.get("pattern_name") or (os.path.basename(file_path) if file_path else
                                       f"{(language or 'unknown').title()} {pattern_type.title()} Pattern")
    return dict(pattern_id=pattern_id, pattern_name=str(name)[:255], pattern_type=pattern_type,
                pattern_version=ctx.get("pattern_version") or version, language=language,
                file_path=file_path, tool_name=ctx.get("tool_name"), pattern_data=data)
