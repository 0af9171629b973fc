"""Assessor tests; `trial` builds the TrialResult records an assessor sees."""

from __future__ import annotations

from collections.abc import Sequence

from hpoqueue.results.records import TrialResult
from hpoqueue.states import TrialState


def trial(seq: int, curve: Sequence[float], state: TrialState = TrialState.SUCCEEDED,
          value: float | None = None) -> TrialResult:
    """A trial with intermediate results `curve`; a SUCCEEDED one gets its last result as final value."""
    if value is None and state is TrialState.SUCCEEDED and curve:
        value = curve[-1]
    return TrialResult(seq=seq, params={"x": seq}, state=state, value=value, intermediate=tuple(curve))
