"""The fault modes' declarations: their parameters with defaults, one line of help each,
and ``checked_params``, which fills in defaults, applies types and checks ranges.

``faults`` holds the current mode and acts on it; the package docstring and ``--help``
describe the modes to people.
"""

from __future__ import annotations

from typing import Any

from .contract import PHRASES

__all__ = ["FAULTS", "FAULT_HELP", "FAULT_MODES", "checked_params"]

#: Fault mode -> its parameters with their defaults; any other parameter is refused.
FAULTS: dict[str, dict[str, Any]] = {
    "none": {}, "error": {"status": 500, "detail": None}, "rate_limit": {"retry_after": None},
    "degraded": {}, "db_down": {}, "hang": {}, "flaky": {"every": 2}, "slow": {"delay_s": 0.5},
    "trickle": {"interval_s": 1.0}, "redirect": {"location": "/redirected"}, "html": {}, "empty": {},
    "unknown_error": {"error_type": "WeirdError", "match": ""}, "idle_pool": {"idle_s": 300.0},
    "body_limit": {"max_bytes": 65536},
    # Stored, then the client is not told: the answer comes late, cut short, or not at all.
    "late": {"delay_s": 2.0}, "truncate": {"at_bytes": 20}, "reset": {"after_events": None},
}
FAULT_MODES = tuple(FAULTS)
#: What each mode imitates, one line each (``--help`` adds the parameters).
FAULT_HELP = {
    "none": "normal service",
    "error": "track routes answer {detail} with status (503, 504 as the service)",
    "rate_limit": "track routes answer 429, with Retry-After only when given",
    "degraded": "never reached its database: health says degraded, track routes and reads 503",
    "db_down": "database lost: health healthy, pool empty; events fail 400 ConnectionRefusedError, reads 500",
    "hang": "no answer (every route) until the mode changes, then 504 and nothing stored (health, evolution: normal)",
    "flaky": "every n-th track request answers 500 (n = every)",
    "slow": "answer normally after delay_s (every route)",
    "trickle": "track routes: headers at once, then one body byte per interval_s",
    "redirect": "track routes answer 307 to location",
    "html": "200 with an HTML sign-in page (every route)",
    "empty": "track routes answer 200 with an empty body",
    "unknown_error": "events with match in pattern_id fail with error_type, one by one",
    "idle_pool": "health healthy, but pool_size 0 until a track request or read, and idle_s after one",
    "body_limit": "a proxy in front: a body over max_bytes gets nginx's HTML 413, nothing stored",
    "late": "track routes store as normal, then answer delay_s later (a short client timeout gives up)",
    "truncate": "track routes store, then send the full Content-Length but only at_bytes of the body, and close",
    "reset": "track routes store the first after_events events (all: null), then reset the connection, no answer",
}
_PARAM_TYPES = {"status": int, "detail": str, "retry_after": str, "every": int,
                "delay_s": float, "interval_s": float, "location": str, "error_type": str, "match": str,
                "idle_s": float, "max_bytes": int, "at_bytes": int, "after_events": int}
#: Parameters that may not be negative (durations, sizes, counts); None passes.
_NOT_NEGATIVE = ("delay_s", "interval_s", "idle_s", "max_bytes", "at_bytes", "after_events")


def checked_params(mode: str, params: dict[str, Any]) -> dict[str, Any]:
    """The mode's parameters with defaults filled in and types applied, or ValueError."""
    if mode not in FAULTS:
        raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(FAULT_MODES)}")
    if set(params) - set(FAULTS[mode]):
        raise ValueError(f"fault {mode!r} takes only {sorted(FAULTS[mode])}, not {sorted(params)}")
    merged = dict(FAULTS[mode])
    for name, value in params.items():
        try:
            optional = value is None and FAULTS[mode][name] is None
            merged[name] = None if optional else _PARAM_TYPES[name](value)
        except (TypeError, ValueError):
            expected = _PARAM_TYPES[name].__name__
            raise ValueError(f"fault parameter {name}={value!r} is not {expected}") from None
    if mode == "error" and (merged["status"] < 400 or merged["status"] not in PHRASES):
        raise ValueError(f"fault status {merged['status']} is not an HTTP error status")
    if mode == "unknown_error" and not merged["error_type"]:
        raise ValueError("fault unknown_error needs a non-empty error_type")
    negative = [name for name in _NOT_NEGATIVE if (merged.get(name) or 0) < 0]
    if merged.get("every", 1) < 1 or negative:
        raise ValueError(f"fault parameters out of range: {merged}")
    return merged
