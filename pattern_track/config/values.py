"""Configuration: one frozen value with a default for every field, units in the names.

``Config(**options)`` validates strictly and raises ``ConfigError`` naming the field: a
mistake in code should fail at construction. ``Config.from_env()`` is for hooks and
services configured from the environment: a bad value there logs a warning and falls
back to the default, because a hook must never crash on a typo in someone's shell. What a valid value is,
checks.py says; how the environment is read, env.py.
"""

from __future__ import annotations

import os

from .. import logs
from ..errors import ConfigError
from ..store.cachedir import default_cache_dir, usable_default
from ..store.services import service_dir as _service_dir  # no import at shutdown (services.py)
from . import env
from .checks import check as _check_value, lower_scheme as _lower_scheme, refuse_unknown

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

__all__ = ["Config", "config_from_options", "default_cache_dir", "fields"]

log = logs.get("pattern_track.config")  # its name from before config became a package


class Config:
    """Every option of a tracker, as one frozen value (``help(Tracker)`` describes each).

    ``Config(**options)`` validates each option and raises ``ConfigError`` naming it;
    instances are immutable (``replace()`` returns a changed copy), compare by value and
    hide ``api_key`` from ``repr``. A plain class rather than a dataclass: ``dataclasses``
    (with ``inspect``) costs ~10 ms to import and build, which every hook call would pay.
    """

    base_url: str = "http://localhost:8053"
    enabled: bool = True
    #: Outbox directory; ``None`` means ``default_cache_dir()``.
    cache_dir: str | None = None
    #: ``cleanup_cache()`` removes outbox and dead-letter entries older than this.
    cache_max_age_days: float = 7.0
    #: The outbox refuses (and counts) events past this many megabytes of payload.
    cache_max_size_mb: float = 50.0
    #: ... or past this many events.
    outbox_max_events: int = 1_000_000
    breaker_failure_threshold: int = 3
    breaker_reset_timeout_s: float = 60.0
    health_check_interval_s: float = 30.0
    health_check_timeout_s: float = 1.0
    connect_timeout_s: float = 1.0
    #: The service answers 504 after 30 s and commits what a client abandoned earlier
    #: (wire-contract.md), so the background sender waits longer than that.
    read_timeout_s: float = 35.0
    #: Whole-request bound, enforced outside requests (its read timeout is per read).
    request_deadline_s: float = 40.0
    #: At interpreter exit, how long a request in flight may take before it is cut (what
    #: is unsettled stays in the journal for a detached drainer).
    exit_timeout_s: float = 0.5
    #: Kept for compatibility, no effect: every event is in the journal before
    #: ``track()`` returns (it survives SIGKILL), whatever this says.
    durable: bool = False
    #: Kept for compatibility, no effect: no signal handler is ever installed (the
    #: journal makes one unnecessary; the application's SIGTERM semantics stay its own).
    handle_sigterm: bool = False
    #: ``fsync`` the journal after every event, so a power cut or kernel crash loses
    #: nothing either; costs ~0.25 ms (up to ~7 ms) per ``track()`` on a local disk.
    journal_fsync: bool = False
    #: Seconds after the first event before the network parts load (requests,
    #: diskcache); a process that ends sooner leaves delivery to a detached drainer.
    #: A full batch ends the wait early.
    linger_s: float = 0.25
    #: At exit, start a detached drainer (``pattern-track drain``) when events are left
    #: and none runs; off for environments that forbid background processes (the next
    #: drainer on the machine then adopts the journal).
    handoff: bool = True
    #: Sender threads. One keeps delivery in order (a parent before its child).
    max_workers: int = 1
    batch_size: int = 100
    #: A batch request's body stays under this many bytes (nginx's default limit is
    #: 1 MiB); a 413 halves the batch, and an event alone over it is dead-lettered.
    batch_max_bytes: int = 1_000_000
    #: Events held in memory; past it they wait in the journal alone, read back in order.
    max_buffer_events: int = 10_000
    #: Serialised size above which an event is refused (counted as ``too_large``).
    max_event_bytes: int = 1_048_576
    #: Drainer pause between attempts while the outbox has work and the service is up.
    drain_interval_s: float = 1.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    #: Tries for answers that may be the event's own fault (unknown error type,
    #: parent not found) before it is dead-lettered.
    max_attempts: int = 8
    #: Drain lease; renewed on every batch, must exceed ``request_deadline_s``.
    lease_ttl_s: float = 60.0
    #: Keep breaker and health state in the cache, shared by every process.
    shared_state: bool = True
    api_key: str | None = None  # never in repr
    verify_tls: bool = True
    #: Let requests read proxy variables and ``.netrc`` (off: the service is usually local).
    trust_env: bool = False
    #: ``before_send(event: dict) -> dict | None``: redact or drop (``None``) an event.
    before_send: Callable[[dict[str, Any]], Any] | None = None
    triggered_by: str = "pattern_track"
    #: What ``from_env()`` ignored or corrected, one line each (not an option).
    warnings: tuple[str, ...] = ()

    def __init__(self, **options: Any) -> None:
        _refuse_unknown(options, allow_warnings=True)
        for name, default in _DEFAULTS.items():
            object.__setattr__(self, name, options.get(name, default))
        for name in _DEFAULTS:
            _check(name, getattr(self, name))
        object.__setattr__(self, "base_url", _lower_scheme(self.base_url))
        if self.lease_ttl_s <= self.request_deadline_s:
            raise ConfigError(
                f"lease_ttl_s ({self.lease_ttl_s}) must exceed request_deadline_s "
                f"({self.request_deadline_s}): a lease must outlive the request it covers"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {self.base_url!r}")

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied (validated like the constructor)."""
        return Config(**{**self.values(), **changes})

    def values(self) -> dict[str, Any]:
        """Every field's value, in declaration order (``api_key`` included)."""
        return {name: getattr(self, name) for name in _DEFAULTS}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Config is frozen; use replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Config is frozen")

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _DEFAULTS if name != "warnings")

    def __eq__(self, other: object) -> bool:
        return self._compared() == other._compared() if isinstance(other, Config) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _DEFAULTS if name not in _UNSHOWN)
        return f"Config({shown})"

    @property
    def resolved_cache_dir(self) -> str:
        """``cache_dir``, else ``default_cache_dir()`` if it can be made there, else the
        private per-uid directory in the temp dir (a home that does not exist or cannot be
        written, as for ``nobody``): an unusable default must not leave events in memory."""
        return self.cache_dir or usable_default(default_cache_dir())

    @property
    def service_dir(self) -> str:
        """This service's own store inside the cache directory (services.py): its
        journals, spool, outbox, breaker and health; absolute, not created here."""
        return _service_dir(self.resolved_cache_dir, self.base_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from environment variables; ``overrides`` win and are validated strictly.

        Each variable is checked on its own: a bad one is logged as a warning, kept in
        ``warnings`` (shown by ``stats()["config_warnings"]`` and ``doctor``) and falls
        back to the default for that variable only, so ``PATTERN_TRACKING_ENABLED=false``
        always wins. ``host:port`` without a scheme is read as ``http://host:port``.
        Raises ``ConfigError`` only for ``overrides`` (unknown names or bad values).
        """
        environ = os.environ if environ is None else environ
        _refuse_unknown(overrides)
        values, origin, warnings = env.read(environ, _FROM_ENV)
        while True:
            try:
                config = cls(**{**values, **overrides})
                break
            except ConfigError as exc:
                # Values that are fine alone but not together: drop the environment's
                # share of the conflict, one variable at a time.
                culprit = next((n for n in _PAIRED if n in values and n not in overrides and n in str(exc)), None)
                if culprit is None:
                    raise
                warnings.append(f"ignoring {origin[culprit]}: {exc}; using the default")
                del values[culprit]
        for warning in warnings:
            log.warning("configuration: %s", warning)
        object.__setattr__(config, "warnings", tuple(warnings))
        return config


#: Field -> default, in declaration order.
_DEFAULTS: dict[str, Any] = {name: getattr(Config, name) for name in Config.__annotations__}
_UNSHOWN = {"api_key", "warnings"}
#: Fields checked against each other (lease must outlive a request).
_PAIRED = ("lease_ttl_s", "request_deadline_s")
#: Field -> default of the options the environment can set (a callable cannot be).
_FROM_ENV = {name: default for name, default in _DEFAULTS.items() if name not in ("before_send", "warnings")}


def fields() -> tuple[str, ...]:
    """The option names, in declaration order (``warnings`` is not an option)."""
    return tuple(name for name in _DEFAULTS if name != "warnings")


def _refuse_unknown(options: Mapping[str, Any], *, allow_warnings: bool = False) -> None:
    """``ConfigError`` for option names that do not exist, with the closest valid name."""
    refuse_unknown(options, fields(), also=("warnings",) if allow_warnings else ())


def _check(name: str, value: Any) -> None:
    _check_value(name, value, _DEFAULTS[name])


def config_from_options(base_url: str | None, cache_dir: str | os.PathLike[str] | None,
                        options: Mapping[str, Any]) -> Config:
    """Build a Config from ``Tracker(...)`` arguments; unknown names raise ``ConfigError``."""
    _refuse_unknown(options)
    values = dict(options)
    if base_url is not None:
        values["base_url"] = base_url
    if cache_dir is not None:
        values["cache_dir"] = os.fspath(cache_dir)
    return Config(**values)
