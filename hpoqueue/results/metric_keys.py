"""Every key of a trial's final result, not only 'default': the columns of `trials` and `export`, and the
key `best --metric` and `trials --sort` rank by."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpoqueue.errors import HpoQueueError
from hpoqueue.results.optimize_mode import loss

if TYPE_CHECKING:
    from hpoqueue.storage import TrialRecord

#: names that mean the trial's result itself (the 'default' key of a dict result)
VALUE_KEYS = ("value", "default")


def extra_keys(trials: Sequence[TrialRecord]) -> list[str]:
    """The keys of dict final results besides 'default', in order of first appearance."""
    keys: dict[str, None] = {}
    for trial in trials:
        if isinstance(trial.final_data, dict):
            keys.update((str(k), None) for k in trial.final_data if k != "default")
    return list(keys)


def extras(trial: TrialRecord) -> dict[str, Any]:
    """The trial's final-result keys besides 'default' ({} for a plain number)."""
    data = trial.final_data
    return {str(k): v for k, v in data.items() if k != "default"} if isinstance(data, dict) else {}


def number(trial: TrialRecord, key: str) -> float | None:
    """The trial's `key` as a finite number (the result itself for 'value'/'default'); None when absent."""
    if key in VALUE_KEYS:
        return trial.final_value
    found = extras(trial).get(key)
    if isinstance(found, bool) or not isinstance(found, numbers.Real) or not math.isfinite(found):
        return None
    return float(found)


def check_key(trials: Sequence[TrialRecord], key: str, option: str) -> None:
    """Refuse a metric key no trial reported, naming the keys there are."""
    known = extra_keys(trials)
    if key not in VALUE_KEYS and key not in known:
        shown = ", ".join(["value", *known])
        raise HpoQueueError(f"{option} {key}: no trial reported a metric named {key!r}; known: {shown}")


def ranked(trials: Sequence[TrialRecord], key: str, mode: str) -> list[TrialRecord]:
    """Trials best first by `key` (`mode` minimize or maximize); those without it come last."""
    def order(trial: TrialRecord) -> tuple[bool, float]:
        value = number(trial, key)
        return value is None, loss(value or 0.0, mode)

    return sorted(trials, key=order)
