"""The README's demo: it works, its numbers agree, and it leaves nothing in the temp dir."""

import os
import subprocess

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.slow


def test_quickstart_runs_agrees_with_itself_and_cleans_up(tmp_path, env):
    """accepted = sent at once + kept; all kept delivered after the recovery; no demo dir left."""
    done = subprocess.run([PYTHON, os.path.join(ROOT, "examples", "quickstart.py")], capture_output=True, text=True,
                          env=dict(env, TMPDIR=str(tmp_path)), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted 13 = sent at once 3 + kept in the outbox 10" in done.stdout
    assert "13 delivered in all, 0 waiting" in done.stdout
    assert [p for p in os.listdir(tmp_path) if p.startswith("pattern_track-demo-")] == []
