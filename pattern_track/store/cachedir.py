"""The cache directory: where it is (XDG, else a private per-uid temp dir), and that it is
private, owned by the user and never a symlink (stdlib only)."""

from __future__ import annotations

import os
import stat

from .. import logs
from ..errors import CacheError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_CACHE_DIR", "check_directory", "default_cache_dir", "prepare_directory", "temp_fallback",
           "usable_default"]

#: ``default_cache_dir()`` in words, as every help text says it.
DEFAULT_CACHE_DIR = "$XDG_CACHE_HOME/pattern_track, else ~/.cache/pattern_track"


def _refuse_unsafe(path: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(f"cache directory {path} is a symlink; refusing to follow it")
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache path {path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheError(f"cache directory {path} belongs to another user (uid {info.st_uid})")


def _lstat(path: str) -> os.stat_result | None:
    """``os.lstat(path)``; None when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"cannot use cache directory {path}: {exc.strerror or exc}") from None


def _lstat_made(path: str) -> os.stat_result:
    """``os.lstat(path)``, the directory made (private) first when nothing is there."""
    info = _lstat(path)
    if info is not None:
        return info
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        return os.lstat(path)
    except OSError as exc:
        raise CacheError(f"cannot use cache directory {path}: {exc.strerror or exc}") from None


def prepare_directory(path: str) -> str:
    """Create ``path`` as a private directory, or refuse it clearly if it is unsafe."""
    path = os.path.abspath(os.path.expanduser(path))
    info = _lstat_made(path)
    _refuse_unsafe(path, info)
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_directory(path: str) -> None:
    """Refuse an existing ``path`` that ``prepare_directory`` would refuse; create nothing."""
    path = os.path.abspath(os.path.expanduser(path))
    info = _lstat(path)
    if info is not None:
        _refuse_unsafe(path, info)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/pattern_track``, else ``~/.cache/pattern_track``; always absolute.

    As the XDG rules say, a relative ``XDG_CACHE_HOME`` is ignored. With no usable home
    (no ``HOME`` and no passwd entry, as for many container uids) it is a private per-uid
    directory in the temp dir, ``<tmp>/pattern_track-<uid>``, never a relative path.
    """
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CACHE_HOME") or ""
    if os.path.isabs(xdg):
        return os.path.join(xdg, "pattern_track")
    home = environ.get("HOME") or os.path.expanduser("~")
    if os.path.isabs(home) and home != "/":
        return os.path.join(home, ".cache", "pattern_track")
    return temp_fallback()


_USABLE: dict = {}  # default cache dir -> the directory used for it, decided once per process


def usable_default(preferred: str) -> str:
    """``preferred`` (the default cache directory) if it can be made and written, else the
    per-uid temp directory; decided once per process, and logged when it falls back."""
    chosen = _USABLE.get(preferred)
    if chosen is None:
        chosen = preferred if _could_make(preferred) else temp_fallback()
        if chosen != preferred:
            logs.get(__name__).warning("default cache directory %s cannot be made or written; using %s",
                                       preferred, chosen)
        _USABLE[preferred] = chosen
    return chosen


def _could_make(path: str) -> bool:
    """Could ``prepare_directory(path)`` succeed? It exists as a safe directory of ours
    (not a symlink, not another user's) that we may write, or its nearest existing
    ancestor is a directory we may write. Creates nothing."""
    if os.path.lexists(path):
        try:
            _refuse_unsafe(path, os.lstat(path))
        except (CacheError, OSError):
            return False
        return os.access(path, os.W_OK | os.X_OK)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def temp_fallback() -> str:
    """``<tmp>/pattern_track-<uid>``: the private per-user fallback (made 0700 when used)."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"pattern_track-{os.getuid()}")
