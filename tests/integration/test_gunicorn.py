"""gunicorn --preload: the tracker is made in the master before it forks its workers; the
workers track while serving; a SIGTERM to the master ends everything. Nothing is lost."""

import signal
import socket
import subprocess
import textwrap
import urllib.request

import pytest

from tests.conftest import PYTHON
from tests.helpers import eventually, kill_drainers

gunicorn = pytest.importorskip("gunicorn")
pytestmark = pytest.mark.slow

APP = textwrap.dedent("""
    import os
    from pattern_track import Tracker
    tracker = Tracker(os.environ["URL"], cache_dir=os.environ["CACHE"])  # in the master (--preload)
    tracker.track("pattern_created", pattern_id="master", pattern_data={"code": "m"})

    def app(environ, start_response):
        event_id = tracker.track("pattern_created", pattern_id=f"w{os.getpid()}-{environ['QUERY_STRING']}",
                                 pattern_data={"code": "w"})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [(event_id or "").encode()]
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_preload_workers_lose_nothing(tmp_path, collector, cache_dir, env):
    """40 requests over 2 workers forked from a preloaded master, then SIGTERM: all delivered."""
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}",
                             "--chdir", str(tmp_path), "app:app"],
                            env=dict(env, URL=collector.url, CACHE=cache_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def up():
        try:
            return opener.open(f"http://127.0.0.1:{port}/?0", timeout=1).status == 200
        except OSError:
            return False

    try:
        assert eventually(up, timeout=30), "gunicorn did not start"
        tracked = {opener.open(f"http://127.0.0.1:{port}/?{i}", timeout=5).read().decode() for i in range(1, 41)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert len(tracked) == 40 and "" not in tracked
    assert eventually(lambda: tracked <= {e["pattern_data"]["event_id"] for e in collector.events()}, timeout=30), \
        f"missing: {len(tracked - {e['pattern_data']['event_id'] for e in collector.events()})}"
    # The master's own event is handed off when the master exits on SIGTERM: it may land last.
    assert eventually(lambda: any(e["pattern_id"] == "master" for e in collector.events()), timeout=30)
    masters = [e for e in collector.events() if e["pattern_id"] == "master"]
    assert len(masters) == 1  # delivered once: no worker resent the master's event
    kill_drainers(cache_dir)
