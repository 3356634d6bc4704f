"""What every ``pattern-track`` command shares: the configuration in force, the store
opened on the caller's thread, and one way to print (a summary, or JSON with ``--json``)."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False  # typing costs ~2.5 ms; the hook runs through this package

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

__all__ = ["CliError"]


class CliError(Exception):
    """A command cannot do its work; ``main`` prints it as one line and exits 1."""


def _iso(wall: float | None) -> str | None:
    import datetime

    if wall is None:
        return None
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).isoformat(timespec="seconds")


def _config(args: argparse.Namespace, warnings: list | None = None) -> Any:
    """The configuration in force; ``from_env``'s warnings go to ``warnings`` or to stderr."""
    from ..config import Config

    overrides = {}
    if getattr(args, "url", None):
        overrides["base_url"] = args.url
    if getattr(args, "cache_dir", None):
        overrides["cache_dir"] = args.cache_dir
    config = Config.from_env(**overrides)
    if warnings is not None:
        warnings.extend(config.warnings)
    else:
        for message in config.warnings:
            print(f"pattern-track: warning: {message}", file=sys.stderr)
    return config


def _open(config: Any, *, network: bool) -> Any:
    """Core, dispatcher and drainer on this thread (no background threads)."""
    from ..clock import Clock
    from ..delivery.core import Core, Counters
    from ..delivery.dispatcher import Dispatcher
    from ..delivery.drainer import Drainer

    core = Core(config, Clock(), Counters())
    core.start(network=network)
    if core.outbox is None:
        raise CliError(f"outbox unavailable: {core.outbox_error}")
    dispatcher = Dispatcher(core)
    return core, dispatcher, Drainer(core, dispatcher)


def _emit(args: argparse.Namespace, doc: Any, lines: Sequence[str]) -> None:
    """``doc`` as JSON with ``--json``, else the human ``lines``."""
    print(json.dumps(doc, indent=2, default=str) if args.json else "\n".join(lines))


def _table(rows: Sequence[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in rows)
    return [f"{key:<{width}}  {value}" for key, value in rows]
