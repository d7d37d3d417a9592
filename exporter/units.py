"""Parsing of human durations (``30s``, ``7d``, ``7y``) and sizes (``1MiB``) used in config files."""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)


MAX_DURATION = 1000 * 365 * 86400.0  # past any window a store keeps; inf and nan break arithmetic later


def parse_duration(value: str | int | float) -> float:
    """Return seconds for ``value``: a bare number is seconds, else ``<n><ms|s|m|h|d|w|y>``; finite and
    at most 1000 years, so every later use (a TTL in days, a timedelta) holds it."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s or 7d, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
        if seconds != seconds or seconds < 0:  # nan, or negative
            raise ValueError(f"a duration is a number of seconds from 0 up, got {value!r}")
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"expected a duration like 500ms, 30s, 5m, 12h, 7d or 7y, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration is at most 1000y, got {value!r}")
    return seconds


def parse_size(value: str | int) -> int:
    """Return bytes for ``value``: a bare number is bytes, else ``<n><B|KB|KiB|MB|MiB|...>``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512KiB or 1MiB, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 2**63 - 1:
            raise ValueError(f"a size is from 0 bytes to 8 EiB, got {value!r}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 512KiB, 1MiB or 10MB, got {value!r}")
    size = float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if size > 2**63 - 1:  # inf too: a 400-digit number
        raise ValueError(f"a size is at most 8 EiB, got {value!r}")
    return int(size)


def format_duration(seconds: float) -> str:
    """Render seconds in the largest unit that divides them evenly (``604800`` -> ``7d``)."""
    for unit in ("y", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"


def format_size(size: int) -> str:
    """Render bytes with a binary unit when it divides evenly (``1048576`` -> ``1MiB``)."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _SIZE_UNITS[unit.lower()]
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
