"""Checking one option: its name exists, its value has the right type, is finite and in range.

Every check raises ``ConfigError`` naming the option; values.py runs them on construction
and env.py on each environment variable before it is used.
"""

from __future__ import annotations

from ..errors import ConfigError

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["check", "kind_of", "lower_scheme", "refuse_unknown"]

#: Options that must be at least 1 (the others at least 0).
AT_LEAST_ONE = {
    "breaker_failure_threshold", "max_workers", "batch_size", "max_buffer_events",
    "max_event_bytes", "max_attempts", "outbox_max_events", "batch_max_bytes",
}


def refuse_unknown(options: Mapping[str, Any], valid: Iterable[str], *, also: Iterable[str] = ()) -> None:
    """``ConfigError`` for a name in ``options`` that is neither in ``valid`` nor in ``also``,
    with the closest valid name (else the list of them)."""
    valid = sorted(valid)
    unknown = set(options) - set(valid) - set(also)
    if not unknown:
        return
    import difflib

    for name in sorted(unknown):
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid options: {', '.join(valid)}"
        raise ConfigError(f"unknown option {name!r}{hint}")


def kind_of(default: Any) -> type:
    """The type an option's value must have: its default's (``str`` for a None default)."""
    return type(default) if default is not None else str


def lower_scheme(url: Any) -> Any:
    """``HTTP://Host/`` -> ``http://Host/``: schemes are case-insensitive (RFC 3986)."""
    if not isinstance(url, str) or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest}"


def check(name: str, value: Any, default: Any) -> None:
    """``ConfigError`` unless ``value`` suits option ``name`` (whose default is ``default``)."""
    if name == "before_send":
        if value is not None and not callable(value):
            raise ConfigError("before_send must be callable or None")
        return
    if name == "warnings":
        return
    kind = kind_of(default)
    if value is None:
        if default is None:
            return
        raise ConfigError(f"{name} must not be None")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    if kind in (int, float) and isinstance(value, (int, float)):  # the second is implied: it narrows the type
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        minimum = 1 if name in AT_LEAST_ONE else 0
        if value < minimum:
            raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
