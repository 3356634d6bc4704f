"""pattern_track: record pattern lineage events without getting in the caller's way.

>>> from pattern_track import Tracker
>>> tracker = Tracker("http://localhost:8053")          # doctest: +SKIP
>>> tracker.track_pattern_creation("def f(): pass", {"language": "python"})  # doctest: +SKIP
'python-code-...'
"""

from __future__ import annotations

import logging

from .config import Config
from .errors import CacheError, ConfigError, PatternTrackError
from .event import pattern_id_for
from .tracker import Tracker, get_tracker

__all__ = ["CacheError", "Config", "ConfigError", "PatternTrackError", "Tracker", "get_tracker", "pattern_id_for"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
