"""Frozen, JSON-serializable records that cross module and process boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hpoqueue.states import TrialState

Params = dict[str, Any]


@dataclass(frozen=True)
class Suggestion:
    """One configuration a tuner proposes. ``params`` is what the trial receives, verbatim."""

    params: Params


@dataclass(frozen=True, slots=True)  # slots: a resume holds one per trial
class TrialResult:
    """What tuners and assessors see of one trial.

    ``value`` is the final scalar (the ``default`` key of a dict metric), ``None`` when the trial ended
    without one; ``data`` the final result as reported (a dict's other keys: multi-objective tuners read
    their objectives there). ``intermediate`` holds the intermediate scalars in step order. ``seq`` is the
    trial's sequence number within its experiment (1, 2, ...).
    """

    seq: int
    params: Params
    state: TrialState
    value: float | None = None
    intermediate: tuple[float, ...] = field(default_factory=tuple)
    data: Any = None
