"""The benchmark suite itself still runs: ``python -m tests.bench --quick`` end to end."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASUREMENTS = ("track", "hook", "exit", "import", "drain", "memory", "original", "kill", "recovery", "contention",
                "fleet", "doubt")


def _leaves(doc, path=""):
    """(path, value) of every leaf of a nested dict."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _leaves(value, f"{path}.{key}" if path else key)
    else:
        yield path, doc


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


@pytest.mark.slow
def test_quick_benchmark_reports_every_measurement_with_numbers(tmp_path):
    """A quick benchmark run exits 0 and its JSON has numeric figures for every measurement."""
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATTERN_", "INTELLIGENCE_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-m", "tests.bench", "--quick", "--json", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    for name in MEASUREMENTS:
        leaves = list(_leaves(report["results"].get(name)))
        assert leaves and all(path for path, _ in leaves), f"{name}: no figures"
        bad = [(path, value) for path, value in leaves if not _is_number(value)]
        assert not bad, f"{name}: figures that are not numbers: {bad}"
    assert report["checks"] and all(_is_number(c["value"]) and isinstance(c["pass"], bool) for c in report["checks"])
