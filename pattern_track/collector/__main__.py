"""``python -m pattern_track.collector``: serve a reference collector (``--help`` for options)."""

from .command import main

raise SystemExit(main(prog="python -m pattern_track.collector"))
