"""``pattern-track``: the command line, and the Claude Code hook and installer.

``main`` (the parser and ``main()``; the hook's fast path) with ``argtypes`` (what its
options accept) and ``common`` (what every command shares); one module per command or
group: ``sync`` (sync, drain), ``stats``, ``cleanup`` (cleanup, dead-letter), ``doctor``,
``lineage``, ``install`` (with ``installer``: the hook into Claude Code's settings);
``waiting`` (what waits besides the outbox, as sync, stats and doctor report it); ``hook``
(one payload in, events to the spool out) with ``payload`` (what a payload stands for).
"""

from .main import main

__all__ = ["main"]
