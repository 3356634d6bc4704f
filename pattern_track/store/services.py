"""One store per service inside one cache directory (stdlib only: the hook imports it).

Events, the breaker and the last health answer belong to the service they were tracked
for. Each service (its normalised base URL) gets its own directory,
``<cache_dir>/services/<host>-<port>-<digest>/``, holding its journals, spool, outbox
(``cache.db``) and drainer lock, plus ``service.json`` naming the URL so ``stats`` and
``sync`` can show other services' waiting events. Nothing ever moves between them: a
drainer or a sync for one service never reads another's files.

Before per-service stores (pattern_track 0.1), everything lived in the cache directory
itself; such a *legacy store* does not say which service its events were for, so it is
only reported (``stats()['legacy']``) until ``pattern-track sync --adopt-legacy`` moves it
into the store of the URL the user names.
"""

from __future__ import annotations

import os

# At module level, not in the functions: the first track() may come from a finalizer at
# interpreter shutdown, when no import statement works any more (sys.modules is cleared).
from ..codec import sha256
from ..event import to_json
from .cachedir import prepare_directory

__all__ = ["normalise_url", "service_key", "service_dir", "prepare", "record", "known", "legacy_paths"]

SERVICES = "services"
INFO = "service.json"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def normalise_url(base_url: str) -> str:
    """``scheme://host:port/path`` with scheme and host lower-cased, the port explicit and
    no trailing slash: ``HTTP://LocalHost:8053/`` and ``http://localhost:8053`` are one
    service. Query and fragment are dropped (the client never sends them)."""
    scheme, _, rest = base_url.strip().partition("://")
    scheme = scheme.lower()
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    netloc, slash, path = rest.partition("/")
    netloc = netloc.rpartition("@")[2]  # credentials are not part of which service it is
    if netloc.startswith("["):  # IPv6 literal
        host, _, port = netloc[1:].partition("]")
        host, port = f"[{host.lower()}]", port.lstrip(":")
    else:
        host, _, port = netloc.partition(":")
        host = host.lower()
    port = str(int(port)) if port.isdigit() else port or str(_DEFAULT_PORTS.get(scheme, ""))
    path = ("/" + path).rstrip("/") if slash else ""
    return f"{scheme}://{host}:{port}{path}"


def service_key(base_url: str) -> str:
    """A directory name for the service: readable host and port, then 12 hex digits of
    the sha256 of the normalised URL (so a path or scheme makes a different service)."""
    url = normalise_url(base_url)
    host_port = url.partition("://")[2].split("/", 1)[0]
    readable = "".join(c if c in _SAFE else "-" for c in host_port.lower().replace(":", "-"))[:60]
    return f"{readable.strip('-') or 'service'}-{sha256(url.encode()).hexdigest()[:12]}"


def service_dir(cache_dir: str, base_url: str) -> str:
    """The absolute directory of ``base_url``'s store under ``cache_dir`` (not created)."""
    return os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), SERVICES, service_key(base_url))


def prepare(directory: str, base_url: str) -> str:
    """Create a service's directory (and ``services/``) private, 0700, as the cache
    directory itself (cachedir.py refuses symlinks and other users' directories), and
    record its URL. Returns the absolute path; raises ``CacheError``."""
    prepare_directory(os.path.dirname(os.path.dirname(directory)))
    prepare_directory(os.path.dirname(directory))
    directory = prepare_directory(directory)
    record(directory, base_url)
    return directory


def record(directory: str, base_url: str) -> None:
    """Write ``service.json`` (0600) into a service's directory once; never raises."""
    path = os.path.join(directory, INFO)
    if os.path.exists(path):
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:  # not json, not os.fdopen (it imports io): see the imports above
            os.write(fd, to_json({"base_url": normalise_url(base_url)}).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:  # full or read-only: the next writer records it; leave no half file
        try:
            os.unlink(tmp)
        except OSError:
            pass


def known(cache_dir: str) -> dict[str, str]:
    """``{normalised base URL: directory}`` of every service store under ``cache_dir``.
    A directory without a readable ``service.json`` is listed under its own name."""
    import json

    root = os.path.join(os.path.abspath(os.path.expanduser(cache_dir)), SERVICES)
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return {}
    found = {}
    for name in names:
        directory = os.path.join(root, name)
        if not os.path.isdir(directory):
            continue
        try:
            with open(os.path.join(directory, INFO), encoding="utf-8") as handle:
                url = str(json.load(handle)["base_url"])
        except (OSError, ValueError, KeyError, TypeError):
            url = f"unknown ({name})"
        found[url] = directory
    return found


def legacy_paths(cache_dir: str) -> dict[str, str]:
    """The parts of a legacy (pre per-service) store that exist in ``cache_dir``:
    any of ``outbox`` (cache.db), ``journal`` and ``spool``."""
    root = os.path.abspath(os.path.expanduser(cache_dir))
    parts = {"outbox": os.path.join(root, "cache.db"), "journal": os.path.join(root, "journal"),
             "spool": os.path.join(root, "spool")}
    return {name: path for name, path in parts.items() if os.path.exists(path)}
