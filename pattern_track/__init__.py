"""pattern_track: record pattern lineage events without getting in the caller's way.

>>> from pattern_track import Tracker
>>> tracker = Tracker("http://localhost:8053")          # doctest: +SKIP
>>> tracker.track_pattern_creation("def f(): pass", {"language": "python"})  # doctest: +SKIP
'python-code-...'

Public API: the names in ``__all__`` (``Tracker``, ``get_tracker``, ``Config``,
``pattern_id_for`` and the exceptions ``PatternTrackError``, ``ConfigError``,
``CacheError``) and the ``pattern_track.testing`` module (``FakeClock``,
``tracker_with_clock``); the command line is ``pattern-track`` (``pattern-track --help``).
Every other module is internal and may change. ``help(Tracker)`` documents every option,
``help(Tracker.track)`` every event type, field and drop reason, ``help(Tracker.stats)``
every key.

Importing the package is cheap: the tracker loads on first use, requests and diskcache
only in the background thread, and only once a process has lived ``linger_s``. The
Claude Code hook path imports none of them.
"""

from __future__ import annotations

from .errors import CacheError, ConfigError, PatternTrackError

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

    from .config import Config
    from .event import pattern_id_for
    from .tracker import Tracker, get_tracker

__all__ = ["CacheError", "Config", "ConfigError", "PatternTrackError", "Tracker", "get_tracker", "pattern_id_for"]
__version__ = "0.1.0"

# The package logger gets its NullHandler when pattern_track first logs (logs.py): the
# import stays cheap and nothing can reach stderr through logging.lastResort.

_LAZY = {"Tracker": "tracker", "get_tracker": "tracker", "Config": "config", "pattern_id_for": "event"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pattern_track' has no attribute {name!r}")
    if module == "tracker" and "_THREADING_PRELOADED" not in globals():
        import sys

        # Read by lifecycle.py: a process that never imported threading before its first
        # tracker may be inside an atexit handler, where CPython's threading shutdown
        # (our exit hook) has already been skipped.
        globals()["_THREADING_PRELOADED"] = "threading" in sys.modules
    # __import__, not importlib.import_module: importing importlib costs a short process ~0.3 ms.
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
