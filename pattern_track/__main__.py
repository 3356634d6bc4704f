"""``python -m pattern_track``: the same as the ``pattern-track`` command."""

from .cli import main

raise SystemExit(main())
