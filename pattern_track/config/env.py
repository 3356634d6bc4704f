"""Options from environment variables: their names, old and new, and reading each one alone.

``PATTERN_TRACK_<OPTION>`` sets any option but ``before_send``; the names the original
library documented (``LEGACY_ENV``) still work, and the new name wins when both are set.
A bad value is never fatal here: it becomes a warning and the option keeps its default.
"""

from __future__ import annotations

from ..errors import ConfigError
from .checks import check, kind_of, lower_scheme

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

__all__ = ["ENV_PREFIX", "LEGACY_ENV", "names", "parse", "read", "variables"]

#: Prefix of every environment variable pattern_track added; the older names below
#: are kept because the original library documented them.
ENV_PREFIX = "PATTERN_TRACK_"

#: Historic environment variable names and the field each one sets.
LEGACY_ENV = {
    "INTELLIGENCE_SERVICE_URL": "base_url",
    "PATTERN_TRACKING_ENABLED": "enabled",
    "PATTERN_CACHE_DIR": "cache_dir",
    "PATTERN_CACHE_MAX_AGE_DAYS": "cache_max_age_days",
    "PATTERN_CACHE_MAX_SIZE_MB": "cache_max_size_mb",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "breaker_failure_threshold",
    "CIRCUIT_BREAKER_TIMEOUT": "breaker_reset_timeout_s",
    "HEALTH_CHECK_INTERVAL": "health_check_interval_s",
    "HEALTH_CHECK_TIMEOUT": "health_check_timeout_s",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}



def names(options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(variable, option) pairs; new-style names first so they win over the legacy ones."""
    for name in options:
        yield ENV_PREFIX + name.upper(), name
    yield from LEGACY_ENV.items()


def variables(option: str) -> str:
    """The variables that set ``option``, as a help text names them, the winner first:
    ``"$PATTERN_TRACK_CACHE_DIR or $PATTERN_CACHE_DIR"``."""
    found = [ENV_PREFIX + option.upper()] + [var for var, name in LEGACY_ENV.items() if name == option]
    return " or ".join("$" + var for var in found)


def parse(name: str, raw: str, kind: type) -> Any:
    """The text ``raw`` of option ``name`` as a ``kind``; ``ConfigError`` if it is not one."""
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{name}: expected true/false, got {raw!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    return text or None


def read(environ: Mapping[str, str], defaults: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """The options ``environ`` sets, among ``defaults`` (option -> default), each checked on
    its own: ``(values, origin, warnings)``, ``origin`` naming the variable each value came
    from and ``warnings`` saying what was corrected or ignored (one line each)."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    warnings: list[str] = []
    for var, name in names(defaults):
        raw = environ.get(var)
        if raw is None or name in values:
            continue
        try:
            value = parse(name, raw, kind_of(defaults[name]))
            if name == "base_url" and isinstance(value, str) and "://" not in value and value:
                value = "http://" + value
                warnings.append(f"{var}={raw!r} has no scheme; using {value!r}")
            check(name, value, defaults[name])
            if name == "base_url":
                value = lower_scheme(value)
            if name == "base_url" and not value.startswith(("http://", "https://")):
                raise ConfigError(f"base_url must start with http:// or https://, got {raw!r}")
        except ConfigError as exc:
            warnings.append(f"ignoring {var}: {exc}; using the default")
            continue
        values[name] = value
        origin[name] = var
    return values, origin, warnings
