"""Exceptions of pattern_track.

Exceptions escape only from constructors, the command line and the read calls of
``delivery.readback``; ``track()`` and the background threads turn every failure into a
counted, logged outcome instead.

    PatternTrackError
    ├── ConfigError (also ValueError)      a bad option or keyword argument
    ├── CacheError                         the outbox directory cannot be used safely
    ├── ReadUnknown (delivery.readback)    a read of the service's store did not tell; has a reason
    └── OutboxError                        a storage operation failed (busy, full, corrupt);
                                           internal: always caught and counted
"""

from __future__ import annotations

__all__ = ["CacheError", "ConfigError", "OutboxError", "PatternTrackError"]


class PatternTrackError(Exception):
    """Base class of every exception pattern_track raises."""


class ConfigError(PatternTrackError, ValueError):
    """An option has an invalid value or name; the message names the field."""


class CacheError(PatternTrackError):
    """The cache directory is unsafe (symlink, foreign owner) or unusable."""


class OutboxError(PatternTrackError):
    """A storage operation failed (busy, full, corrupt, unwritable); the caller counts it."""
