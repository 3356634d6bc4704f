"""``python -m pattern_track``: the same as the ``pattern-track`` command."""

from .cli.main import main

raise SystemExit(main())
