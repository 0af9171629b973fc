"""NNI durations: ``30s``, ``10m``, ``1.5h``, ``2d``, or a bare number of seconds."""

from __future__ import annotations

import math
import re

from hpoqueue.errors import ConfigError

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([smhd]?)\s*$")
#: The longest duration accepted (a hundred years): larger numbers only overflow timers.
MAX_SECONDS = 100 * 365 * 86400.0
_HINT = "write a positive number and a unit s, m, h or d, like 30s, 10m, 1.5h or 2d"


def parse_duration(text: str | int | float, *, field: str = "duration", source: str | None = None) -> float:
    """Seconds in `text`; anything else (negative, zero, unknown unit) is a ConfigError naming `field`."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ConfigError(f"{text!r} is not a duration", source=source, field=field, hint=_HINT)
    if isinstance(text, str):
        match = _PATTERN.match(text)
        if match is None:
            raise ConfigError(f"{text!r} is not a duration", source=source, field=field, hint=_HINT)
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    else:
        try:
            seconds = float(text)
        except OverflowError:  # an integer beyond a float's range
            seconds = math.inf
    if math.isnan(seconds) or seconds <= 0:
        raise ConfigError(f"{_short(text)} is not a positive duration", source=source, field=field, hint=_HINT)
    if seconds > MAX_SECONDS:
        raise ConfigError(f"{_short(text)} is longer than a hundred years", source=source, field=field,
                          hint="leave it unset for no limit")
    return seconds


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float | None) -> str | None:
    """The NNI string for `seconds` (``86400s``), which `parse_duration` reads back exactly; None stays."""
    if seconds is None:
        return None
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{float(seconds)!r}s"
