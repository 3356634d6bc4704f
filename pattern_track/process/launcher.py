"""Start a detached drainer process when none is running (used by the hook).

A running drainer holds an exclusive ``flock`` on ``<service dir>/drainer.lock`` for its
whole life, so "is one running?" is one non-blocking lock attempt, correct even after a
SIGKILL (the kernel drops the lock with the process). The child gets stdin, stdout and
stderr on /dev/null and its own session: the hook host waits for EOF on the hook's
pipes, and must not wait for the drainer. A drainer lives while anything waits (an
outage only makes it sleep), so nothing here delays starting one. ``drainer.resume``
(``resume_after``) is kept readable for stores written by earlier versions.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["drainer_lock", "drainer_running", "ensure_drainer", "resume_after", "set_resume_after"]

LOCK_NAME = "drainer.lock"
RESUME_NAME = "drainer.resume"
#: The longest a stored resume time may lie ahead (a breaker reset timeout is 60 s).
MAX_RESUME_S = 300.0


def drainer_lock(cache_dir: str) -> int | None:
    """Take the drainer lock; return its fd (keep it open) or None if another holds it."""
    fd = os.open(os.path.join(cache_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


WAKE_NAME = "drainer.wake"


def _wake(service_dir: str) -> None:
    """Tell a running drainer that work was left for it (``drainer.wake``); never raises."""
    try:
        os.close(os.open(os.path.join(service_dir, WAKE_NAME), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError:
        pass


def woken(service_dir: str) -> bool:
    """Was work left for the running drainer since it last looked? (Consumes the signal.)"""
    try:
        os.unlink(os.path.join(service_dir, WAKE_NAME))
        return True
    except OSError:
        return False


def drainer_running(service_dir: str) -> bool:
    """Does a drainer hold the service's lock (one non-blocking lock try; creates nothing)?"""
    try:
        fd = os.open(os.path.join(service_dir, LOCK_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def resume_after(cache_dir: str) -> float:
    """The wall-clock time before which no drainer should start (0: now)."""
    try:
        with open(os.path.join(cache_dir, RESUME_NAME), encoding="ascii") as handle:
            when = float(handle.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0
    return when if when - time.time() <= MAX_RESUME_S else 0.0


def pid_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended: its files and locks are released)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return not os.path.exists("/proc/self")  # /proc exists but not this pid: gone


def set_resume_after(cache_dir: str, when: float) -> None:
    path = os.path.join(cache_dir, RESUME_NAME)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{when:.3f}")
        os.replace(tmp, path)
    except OSError:
        pass


def ensure_drainer(cache_dir: str, environ: Mapping[str, str] | None = None, *, service_dir: str,
                   after_pid: int | None = None, settings: Mapping[str, object] | None = None) -> bool:
    """Spawn ``python -m pattern_track drain --detached`` unless one runs for the service
    whose store is ``service_dir`` (its lock and resume time live there); True if spawned.
    ``cache_dir`` is the cache directory the drainer is given (it finds the same store
    from it and the service URL in ``environ`` or ``settings``).

    ``after_pid``: the drainer first waits (bounded) for that process to end, so it can
    adopt its journal (used at exit). ``settings``: config fields the drainer must share
    with the tracker that hands off (its service URL, key, TLS and timeouts), passed as
    ``PATTERN_TRACK_*`` variables."""
    fd = drainer_lock(service_dir)
    if fd is None:
        _wake(service_dir)  # one runs: if it only covers a live process, it now delivers
        return False
    os.close(fd)  # free it for the child; two racing hooks may both spawn, one child wins
    env = dict(os.environ if environ is None else environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["PATTERN_TRACK_CACHE_DIR"] = cache_dir
    for name, value in (settings or {}).items():
        if value is not None:
            env["PATTERN_TRACK_" + name.upper()] = str(value)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    argv = [sys.executable, "-m", "pattern_track", "drain", "--detached"]
    if after_pid is not None:
        argv += ["--after-pid", str(after_pid)]
    os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
    return True
