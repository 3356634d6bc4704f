"""What ``Tracker``'s methods do: the facade (tracker.py) binds these functions as its methods.

``recording`` (``track()``: check, serialise, journal, hand on), ``lineage`` (the original
library's ``track_pattern_*`` calls), ``maintenance`` (sync now, clean up, reset the
breaker, check health), ``report`` (``stats()`` and ``get_tracker_stats()``). Each function
takes the tracker as its first parameter, ``self``, as the method it becomes.
"""
