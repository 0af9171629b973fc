"""Metric parsing and validation shared by the trial API and the runner (stdlib only, imported by trials).

A metric is a finite number, or a dict whose ``'default'`` key is a finite number (NNI's rule); the other
keys of a dict ride along for display and export.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Literal

from hpoqueue.errors import MetricError

#: "loss" is report_loss's per-step curve: stored and shown, never the trial's result nor judged by assessors
MetricKind = Literal["intermediate", "final", "loss"]
KINDS: tuple[str, ...] = ("intermediate", "final", "loss")

#: A number as a trial prints it: ``3``, ``-0.25``, ``.5``, ``1e-3``, and ``nan``/``inf`` so that those are
#: reported as rejected instead of silently ignored.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf(?:inity)?)\b"
#: The value on stdout: a number that ends there (a sentence's full stop may follow), else the whole
#: number-like word (``0x10``, ``1.5abc``), which stdout_value then rejects instead of reading its prefix.
_STDOUT_VALUE = rf"(?:{_NUMBER})(?!\w|\.\w)|[-+.\d][^\s,;]*"
#: The longest metric-file line accepted: a metric is a number and a few display keys, not a data dump.
MAX_LINE = 64 * 1024


class InvalidMetricError(MetricError, ValueError):
    """A reported metric is not a finite number nor a dict with a numeric 'default' (also a ValueError)."""


@dataclass(frozen=True)
class Metric:
    """One validated report: ``value`` is the scalar the tuner sees, ``data`` the value as reported."""

    kind: MetricKind
    value: float
    data: Any


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def scalar(value: Any) -> float:
    """Return the scalar of a reported metric, or raise InvalidMetricError saying why it is not one."""
    number = value.get("default") if isinstance(value, dict) else value
    if isinstance(value, dict) and "default" not in value:
        problem = f"the dict has no 'default' key (keys: {sorted(map(str, value))})"
    elif isinstance(number, bool) or not isinstance(number, numbers.Real):
        problem = f"got {_show(value)}"
    elif not _finite(number):
        problem = f"got {_show(value)} (not finite)"
    elif isinstance(value, dict) and not _finite_everywhere(value):
        problem = f"got {_show(value)} (a dict needs finite numbers in every key)"
    else:
        return float(number)
    raise InvalidMetricError(f"metric must be a finite number or a dict with a numeric 'default'; {problem}")


def _finite(number: numbers.Real) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an integer beyond a float's range
        return False


def _finite_everywhere(value: Any) -> bool:
    """True when every number in `value` (nested dicts and lists included) is finite (docs/trial-api.md)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, numbers.Real) and not isinstance(item, bool) and not _finite(item):
            return False
    return True


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _jsonable(obj: Any) -> Any:
    """json.dumps hook: numpy-like scalars and arrays become plain numbers and lists."""
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def metric_line(kind: MetricKind, value: Any) -> str:
    """Validate ``value`` and return the JSON line (with newline) the trial API appends to the metric file."""
    scalar(value)
    try:
        return json.dumps({"kind": kind, "value": value}, allow_nan=False, default=_jsonable) + "\n"
    except (TypeError, ValueError) as exc:
        raise InvalidMetricError(
            f"metric must be JSON serializable with finite numbers in every key; got {_show(value)} ({exc})"
        ) from None


def parse_metric_line(line: str) -> Metric | None:
    """Parse one line of the metric file; None for a blank line, InvalidMetricError for anything invalid."""
    if not line.strip():
        return None
    if len(line) > MAX_LINE:
        raise InvalidMetricError(f"metric file line is {len(line)} characters long (at most {MAX_LINE})")
    try:  # NaN and Infinity are not JSON; 1e999 (read as inf) is caught by scalar()
        record = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidMetricError(f"metric file line is not JSON: {_show(line.strip())}") from None
    if not isinstance(record, dict) or record.get("kind") not in KINDS or "value" not in record:
        raise InvalidMetricError(
            f'metric file line must be {{"kind": "intermediate"|"final"|"loss", "value": ...}}; got {_show(record)}'
        )
    return Metric(kind=record["kind"], value=scalar(record["value"]), data=record["value"])


def stdout_pattern(metric_name: str = "default", pattern: str | None = None) -> re.Pattern[str]:
    """Regex for metrics printed on stdout: ``<name>=<number>`` or ``<name>: <number>`` anywhere in a line.

    The name must stand alone (``val_loss=1`` does not match ``loss``). ``pattern`` replaces the default and
    must define a group named ``value``.
    """
    if pattern is None:
        pattern = rf"(?<![\w.-]){re.escape(metric_name)}\s*[=:]\s*(?P<value>{_STDOUT_VALUE})"
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise MetricError(f"metric pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if "value" not in regex.groupindex:
        raise MetricError(f"metric pattern {pattern!r} has no (?P<value>...) group; wrap the number in one")
    return regex


def match_stdout(line: str, regex: re.Pattern[str]) -> str | None:
    """The raw value text if ``line`` carries a metric (first match), else None."""
    found = regex.search(line)
    return found.group("value") if found else None


def stdout_value(text: str) -> float:
    """Convert the value text matched on stdout to a finite float, or raise InvalidMetricError: the whole
    text must be one number (``0x10``, ``1.5abc`` and ``1_000`` are not)."""
    number: Any = text
    if re.fullmatch(_NUMBER, text.strip()):
        number = float(text)
    return scalar(number)
