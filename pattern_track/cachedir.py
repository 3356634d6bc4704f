"""The cache directory: private, owned by the user, never a symlink (stdlib only)."""

from __future__ import annotations

import os
import stat

from .errors import CacheError

__all__ = ["check_directory", "prepare_directory"]


def _refuse_unsafe(path: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(f"cache directory {path} is a symlink; refusing to follow it")
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache path {path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheError(f"cache directory {path} belongs to another user (uid {info.st_uid})")


def _lstat(path: str, *, create: bool) -> os.stat_result | None:
    try:
        try:
            return os.lstat(path)
        except FileNotFoundError:
            if not create:
                return None
            os.makedirs(path, mode=0o700, exist_ok=True)
            return os.lstat(path)
    except OSError as exc:
        raise CacheError(f"cannot use cache directory {path}: {exc.strerror or exc}") from None


def prepare_directory(path: str) -> str:
    """Create ``path`` as a private directory, or refuse it clearly if it is unsafe."""
    path = os.path.abspath(os.path.expanduser(path))
    info = _lstat(path, create=True)
    _refuse_unsafe(path, info)
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_directory(path: str) -> None:
    """Refuse an existing ``path`` that ``prepare_directory`` would refuse; create nothing."""
    path = os.path.abspath(os.path.expanduser(path))
    info = _lstat(path, create=False)
    if info is not None:
        _refuse_unsafe(path, info)
