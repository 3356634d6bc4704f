"""JSON and SHA-256 from CPython's own accelerators, without importing json or hashlib.

A short process (a hook call) pays for every import: ``json`` loads its decoder and ``re``
(~9 ms here), ``hashlib`` loads OpenSSL (~2.5 ms). The C encoder (``_json``) and the builtin
sha256 give the same output at a fraction of that; other interpreters get the standard
modules.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from hashlib import _Hash
    from typing import Any

__all__ = ["sha256", "to_json", "to_json_unicode"]


def _compact_dumps(ascii_only: bool) -> Callable[[Any], str]:
    """``json.dumps(o, ensure_ascii=..., allow_nan=False, separators=(",", ":"))`` through
    json's own C encoder (``_json``), without importing ``json``: the package loads its
    decoder and ``re`` too, ~9 ms for a short process here. Same output, same errors
    (``TypeError`` for what JSON cannot carry, ``ValueError`` for NaN); a circular
    structure recurses until ``RecursionError``."""
    try:
        from _json import encode_basestring, encode_basestring_ascii, make_encoder
    except ImportError:  # pragma: no cover - not CPython
        import json

        return json.JSONEncoder(ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":")).encode
    escape = encode_basestring_ascii if ascii_only else encode_basestring

    def default(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    # markers=None: no circular check (a reused markers dict would keep stale ids after an error).
    encode = make_encoder(None, default, escape, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        if isinstance(value, str):
            return escape(value)
        return "".join(encode(value, 0))

    return dumps


#: Compact ASCII JSON of a value (what ``event.encode`` sends); for small files of ours too.
to_json = _compact_dumps(True)
#: The same, non-ASCII characters as they are (the strict check of a lone surrogate).
to_json_unicode = _compact_dumps(False)


def _sha256_constructor() -> Callable[[bytes], _Hash]:
    """The builtin sha256 (the same digest): hashlib's loads OpenSSL, ~2.5 ms per process."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12+ (no stub: a private module)
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.10, 3.11 (no stub)
        except ImportError:
            from hashlib import sha256
    constructor: Callable[[bytes], _Hash] = sha256  # the builtins have hashlib's interface
    return constructor


sha256 = _sha256_constructor()
