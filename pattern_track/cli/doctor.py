"""``pattern-track doctor``: the configuration in force, the cache and store, the service,
the hook; each problem with the step that fixes it, and the next step last."""

from __future__ import annotations

import os
import time

from .common import CliError, _config, _emit, _iso, _open
from .stats import _stats
from .waiting import _elsewhere_lines

TYPE_CHECKING = False  # typing costs ~2.5 ms to import
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["cmd_doctor"]


def _hook_locations() -> tuple[list[dict], list[str]]:
    """Our hook in the user's and this project's settings: ([{path, command, runnable}], errors)."""
    import shlex
    import shutil

    from . import installer

    project = os.path.dirname(installer.project_settings())
    found, errors = [], []
    for path in (installer.user_settings(), installer.project_settings(), os.path.join(project, "settings.local.json")):
        try:
            commands = installer.find(path)
        except installer.SettingsError as exc:
            errors.append(str(exc))
            continue
        for command in commands:
            # which() checks a path with a slash directly: is the hook's program still there?
            found.append({"path": path, "command": command, "runnable": bool(shutil.which(shlex.split(command)[0]))})
    return found, errors


def _last_failure(health: dict, breaker: dict) -> str | None:
    """The last failure any process recorded (health answer or breaker), before doctor's own check."""
    if health and not health.get("healthy"):
        return (f"service unhealthy ({health.get('reason')}) at {_iso(health.get('wall'))}; "
                f"failed health checks in a row: {health.get('consecutive_failures', 1)}")
    if breaker.get("failure_count"):
        return f"{breaker['failure_count']} failed deliveries in a row (breaker {breaker['state']})"
    return None


class _Report:
    """doctor's findings: lines to print, the JSON document, problems, and steps (most urgent first)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.doc: dict = {}
        self.steps: list[str] = []
        self.problems = 0

    def problem(self, step: str) -> None:
        self.problems += 1
        self.steps.append(step)


def _doctor_config(args: argparse.Namespace, report: _Report) -> Any:
    from ..config import fields

    warnings: list[str] = []
    config = _config(args, warnings)
    shown = {}
    for name in fields():
        value = getattr(config, name)
        if name == "api_key":
            value = "set" if value else None
        elif name == "cache_dir":  # the directory in use, never None
            value = os.path.abspath(os.path.expanduser(config.resolved_cache_dir))
        shown[name] = value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)
    report.doc.update(config=shown, warnings=warnings)
    report.lines += ["configuration in force:"] + [f"  {k} = {v!r}" for k, v in shown.items()]
    report.lines += [f"warning: {w}" for w in warnings] or ["warnings: none"]
    return config


def _doctor_cache_and_service(config: Any, report: _Report) -> dict | None:
    """Cache, outbox, breaker, last failure and a live health check; the outbox stats, or None."""
    import stat

    path = os.path.abspath(os.path.expanduser(config.resolved_cache_dir))
    try:
        core, _, drainer = _open(config, network=True)
    except CliError as exc:
        report.doc["cache"] = {"path": path, "mode": None, "error": str(exc)}
        report.lines.append(f"cache: {path}: {exc}")
        report.problem(f"make {path} a usable private directory, or set PATTERN_CACHE_DIR to one")
        return None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    report.doc["cache"] = {"path": path, "mode": f"{mode:o}", "error": None}
    report.lines.append(f"cache: {path} (mode {mode:o}{'' if mode == 0o700 else ', expected 700'})")
    if mode != 0o700:
        report.problem(f"chmod 700 {path}")
    stats = _stats(core, drainer)
    from ..store.inventory import take
    from .waiting import _resume_drainer

    stats["drainer"] = _resume_drainer(config, take(config.service_dir, core.outbox))
    report.doc["drainer"] = stats["drainer"]
    breaker = report.doc["breaker"] = stats["breaker"]
    report.doc["outbox"] = {k: stats[k] for k in ("pending", "pending_bytes", "spooled", "dead_letter")}
    report.lines.append(f"outbox: {stats['pending']} events ({stats['pending_bytes']} bytes), "
                        f"{stats['spooled']} spooled, {stats['journal_waiting']} in ended journals, "
                        f"{stats['dead_letter']} dead letters")
    report.doc["quarantined"] = stats["quarantined"]
    for name in stats["quarantined"]:
        report.lines.append(f"store: damaged file moved aside: {name}")
        report.problem(f"inspect, then remove {os.path.join(stats['store'], name)} (a damaged store was replaced "
                       "by a new one; what it held could not be read)")
    probe = breaker["seconds_until_probe"]
    report.lines.append(f"breaker: {breaker['state']}, {breaker['failure_count']} failures"
                        + (f", next probe at {_iso(time.time() + probe)}" if probe else ""))
    last = report.doc["last_failure"] = _last_failure(core.store.get("health") or {}, breaker)
    report.lines.append(f"last failure: {last or 'none recorded'}")
    healthy = core.health is not None and core.health.check()
    reason = core.health.snapshot()["reason"] if core.health is not None else "network parts did not start"
    report.doc["service"] = {"url": config.base_url, "healthy": healthy, "reason": reason}
    report.lines.append(f"service: {config.base_url} is {'healthy' if healthy else 'NOT healthy'} ({reason})")
    if not healthy:
        report.problem(f"start the service at {config.base_url} or set INTELLIGENCE_SERVICE_URL; "
                       "events wait in the outbox meanwhile")
    return stats


def _doctor_hook(report: _Report) -> None:
    found, errors = _hook_locations()
    report.doc["hook"] = {"installed": bool(found), "locations": found, "errors": errors}
    report.lines += [f"hook: {e}" for e in errors]
    report.lines += [f"hook: installed in {f['path']}: `{f['command']}`"
                     + ("" if f["runnable"] else " (its program is missing)") for f in found]
    if errors:
        report.problem("repair the settings file named above (Claude Code cannot read it either)")
    if any(not f["runnable"] for f in found):
        report.problem("run `pattern-track install` to point the hook at this installation")
    if not found:
        report.lines.append("hook: not installed: run `pattern-track install`")
        report.steps.append("run `pattern-track install` so Claude Code's edits are tracked")  # a choice, not a fault


def cmd_doctor(args: argparse.Namespace) -> int:
    report = _Report()
    config = _doctor_config(args, report)
    if report.doc["warnings"]:
        report.problem("fix or unset the environment variables in the warnings above")
    stats = _doctor_cache_and_service(config, report)
    _doctor_hook(report)
    waiting = stats["waiting"]["undelivered"] if stats else 0
    if stats and waiting:
        report.steps.append(f"run `pattern-track sync` to deliver the {waiting} waiting events now "
                            f"(a drainer delivers them by itself once the service answers: {stats['drainer']})")
    if stats and stats["dead_letter"]:
        report.steps.append(f"look at `pattern-track dead-letter list` "
                            f"({stats['dead_letter']} events the service refused)")
    if stats:
        report.doc["other_services"], report.doc["legacy"] = stats["other_services"], stats["legacy"]
        report.lines += _elsewhere_lines(stats["other_services"], stats["legacy"])
        if stats["legacy"]:
            report.steps.append("run `pattern-track sync --url URL --adopt-legacy` to send the legacy store's "
                                "events to the service they were for")
    report.doc["problems"] = report.problems
    report.doc["next"] = report.steps[0] if report.steps else "nothing: all is well"
    _emit(args, report.doc, [*report.lines, f"next: {report.doc['next']}"])
    return 0 if report.problems == 0 else 1
