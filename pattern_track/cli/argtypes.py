"""What the options of ``pattern-track`` accept: argparse ``type=`` functions that refuse a bad
value with one line naming what was expected."""

from __future__ import annotations

__all__: list = []


def _positive(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, minimum_excluded=True)


def _non_negative(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, minimum_excluded=False)


def _number(text: str, *, minimum_excluded: bool) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (minimum_excluded and value == 0):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if minimum_excluded else '>='} 0, got {text!r}")
    return value


def _hops(text: str) -> int:
    """argparse type: a whole number >= 0."""
    import argparse

    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _pattern_id(text: str) -> str:
    """argparse type: a non-empty pattern id."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("expected a pattern id, got an empty string")
    return text


def _url(text: str) -> str:
    import argparse

    scheme, sep, rest = text.partition("://")
    text = scheme.lower() + sep + rest  # schemes are case-insensitive
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text
