"""Configuration: every option of a tracker, its default, and where a value may come from.

``values`` (``Config``: one frozen value with a default for every option, validated on
construction), ``checks`` (what a valid value of one option is), ``env`` (options from
environment variables, old names and new), ``options`` (``Options``, the same options for
type checkers). Import from here: ``from pattern_track.config import Config``.
"""

from __future__ import annotations

from .env import ENV_PREFIX, LEGACY_ENV
from .values import Config, config_from_options, default_cache_dir, fields

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from .options import Options as Options  # for type checkers only: Tracker(**options)

__all__ = ["Config", "ENV_PREFIX", "LEGACY_ENV", "config_from_options", "default_cache_dir", "fields"]
