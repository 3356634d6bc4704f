"""What waits for a service besides its outbox, as ``sync``, ``stats`` and ``doctor`` report it:
other services' stores, a legacy store, damaged files set aside, and the drainer."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2.5 ms to import

if TYPE_CHECKING:
    from typing import Any

__all__: list = []


def _elsewhere(config: Any) -> tuple[dict, dict | None]:
    """(other services' waiting events, the legacy store's or None): shown, never sent."""
    from ..store.stores import elsewhere, legacy_waiting

    return elsewhere(config.resolved_cache_dir, config.service_dir), legacy_waiting(config.resolved_cache_dir)


def _elsewhere_lines(others: dict, legacy: dict | None) -> list[str]:
    lines = []
    for url, counts in others.items():
        if "error" in counts:
            lines.append(f"another service: {url}: its store cannot be read ({counts['error']})")
            continue
        waiting = sum(v for k, v in counts.items() if k in ("pending", "spooled", "journal"))
        dead = f", {counts['dead_letter']} dead letters" if counts.get("dead_letter") else ""
        how = (f" (pattern-track sync --url {url} delivers them)" if waiting and "://" in url
               else " (its service.json is unreadable: the URL is unknown)" if "://" not in url else "")
        lines.append(f"another service: {url}: {waiting} events wait{dead}{how}")
    if legacy:
        waiting = sum(v for k, v in legacy.items() if k in ("pending", "spooled", "journal"))
        lines.append(f"legacy store (from before per-service stores, service unknown): "
                     f"{legacy.get('error') or f'{waiting} events wait'}; "
                     f"`pattern-track sync --url URL --adopt-legacy` sends them to URL")
    return lines


def _quarantine_lines(names: list) -> list[str]:
    return [f"damaged, moved aside: {name} (delivery goes on without it; inspect it, then remove it)"
            for name in names]


def _resume_drainer(config: Any, waiting: Any) -> str:
    """Make sure a drainer delivers what waits (after a reboot the CLI resumes it):
    ``running``, ``started``, ``not needed`` or ``off`` (``handoff=false``)."""
    from ..process.launcher import drainer_running, ensure_drainer
    from ..process.lifecycle import HANDOFF_SETTINGS

    if drainer_running(config.service_dir):
        return "running"
    if not waiting.undelivered:
        return "not needed"
    if not config.handoff:
        return "off"
    settings = {name: getattr(config, name) for name in HANDOFF_SETTINGS}
    try:
        started = ensure_drainer(config.resolved_cache_dir, service_dir=config.service_dir, settings=settings)
    except OSError as exc:
        return f"cannot start ({type(exc).__name__})"
    return "started" if started else "running"
