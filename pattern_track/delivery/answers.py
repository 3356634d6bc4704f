"""Reading the service's answers: a JSON body, its detail text, a ``Retry-After`` header,
and a refusal's reason on one line for people.

outcome.py decides what an answer means from what these read; none of them decides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["RETRY_AFTER_MAX_S", "detail_text", "is_service_body", "one_line", "parse_json", "parse_retry_after"]

#: A ``Retry-After`` longer than this is treated as this (an absurd value must not park delivery).
RETRY_AFTER_MAX_S = 600.0


def parse_json(body: bytes) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def is_service_body(headers: Mapping[str, str], body: bytes, complete: bool) -> bool:
    """Is an unreadable 2xx still the service's own answer? Its body broke off, or it is
    JSON that does not parse (cut short): yes. An HTML page (a proxy's sign-in): no."""
    if not complete:
        return True
    ctype = str(headers.get("Content-Type") or "").lower()
    return "json" in ctype or body.lstrip()[:1] in (b"{", b"[")


def detail_text(body: bytes) -> str:
    """The service's ``detail`` (300 characters at most), else the body's first 120 bytes."""
    doc = parse_json(body)
    if isinstance(doc, dict) and "detail" in doc:
        return str(doc["detail"])[:300]
    return body[:120].decode("utf-8", "replace")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), clamped to
    ``[0, RETRY_AFTER_MAX_S]``. HTTP dates are GMT (RFC 9110 5.6.7) whatever ``TZ`` says,
    including the zone-less asctime form."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # only for the rare HTTP-date form; costly at import

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # asctime form: GMT by definition, not local time
            import datetime

            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


#: Outcome reasons that stand for one HTTP status (the others are ``http_<status>`` or none).
_STATUS_OF = {"too_large_for_service": 413, "rate_limited": 429}
#: The longest text line ``one_line`` keeps from a detail.
LINE_CHARS = 120


def one_line(reason: str | None, detail: str | None) -> str:
    """A dead letter's (or any outcome's) reason for people, on one line:
    ``reason: HTTP <status> <phrase>: <first line of text>``.

    The status is the one the reason stands for (``too_large_for_service`` is a 413,
    ``http_422`` a 422), if any. An HTML page (a proxy's 413) is reduced to its text, tags
    and entities gone; the text line that only restates the status is left out, and the
    first line kept is cut to ``LINE_CHARS`` characters.
    """
    import html
    import re

    status = _STATUS_OF.get(reason or "")
    if status is None and re.fullmatch(r"http_\d{3}", reason or ""):
        status = int(str(reason)[5:])
    text = str(detail or "")
    is_html = text.lstrip()[:1] == "<"
    if is_html:
        text = html.unescape(re.sub(r"<[^>]*(>|$)", "\n", text))  # a tag cut short at the end too
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not (is_html and status and line.startswith(str(status)))]
    first = lines[0] if lines else ""
    if len(first) > LINE_CHARS:
        first = first[:LINE_CHARS - 3].rstrip() + "..."
    head = ""
    if status is not None:
        import http

        try:
            head = f"HTTP {status} {http.HTTPStatus(status).phrase}"
        except ValueError:
            head = f"HTTP {status}"
    return ": ".join(part for part in (reason or "unknown", head, first) if part)

