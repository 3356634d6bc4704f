"""``pattern-track``: the command line, and the Claude Code hook and installer.

``main`` (the parser and ``main()``; the hook's fast path), ``common`` (what every
command shares), ``commands`` (sync, stats, cleanup, dead-letter), ``doctor``,
``installer`` (the hook into Claude Code's settings), ``hook`` (one payload in, events
to the spool out).
"""

from .main import main

__all__ = ["main"]
