"""The cache directory: private, owned by the user, never a symlink (stdlib only)."""

from __future__ import annotations

import os
import stat

from .errors import CacheError

__all__ = ["check_directory", "prepare_directory"]


def prepare_directory(path: str) -> str:
    """Create ``path`` as a private directory, or refuse it clearly if it is unsafe."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            os.makedirs(path, mode=0o700, exist_ok=True)
            info = os.lstat(path)
    except OSError as exc:
        raise CacheError(f"cannot create cache directory {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(f"cache directory {path} is a symlink; refusing to follow it")
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache path {path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheError(f"cache directory {path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def check_directory(path: str) -> None:
    """Refuse an existing ``path`` that ``prepare_directory`` would refuse; create nothing."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CacheError(f"cannot use cache directory {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise CacheError(f"cache directory {path} is a symlink; refusing to follow it")
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(f"cache path {path} is not a directory")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheError(f"cache directory {path} belongs to another user (uid {info.st_uid})")
