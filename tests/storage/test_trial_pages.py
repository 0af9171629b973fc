"""Ordering, limits and pages run in the database: a top 20 or an export never loads a long experiment whole."""

from __future__ import annotations

import pytest

from hpoqueue.states import TrialState
from hpoqueue.storage import ExperimentRecord, Storage

VALUES = [0.5, None, 0.9, 0.1, 0.5]  #: final values of trials 1..5 (trial 2 FAILED without one)


@pytest.fixture
def ranked(store: Storage, exp: ExperimentRecord) -> list[str]:
    trials = store.create_trials(exp.id, [{"i": i} for i in range(len(VALUES))])
    for trial, value in zip(trials, VALUES, strict=True):
        state = TrialState.FAILED if value is None else TrialState.SUCCEEDED
        store.transition(trial.id, state, expected=[TrialState.WAITING], final_value=value)
    return [t.id for t in trials]


@pytest.mark.parametrize(("mode", "order"), [("minimize", [4, 1, 5, 3, 2]), ("maximize", [3, 1, 5, 4, 2])])
def test_value_order_is_best_first_ties_by_seq_no_value_last(store: Storage, exp: ExperimentRecord,
                                                             ranked: list[str], mode: str, order: list[int]) -> None:
    got = store.trials(exp.id, sort="value", optimize_mode=mode)
    assert [t.seq for t in got] == order
    assert [t.seq for t in store.trials(exp.id, sort="value", optimize_mode=mode, limit=2)] == order[:2]


def test_state_order_and_limit_with_a_state_filter(store: Storage, exp: ExperimentRecord, ranked: list[str]) -> None:
    assert [t.seq for t in store.trials(exp.id, sort="state")] == [2, 1, 3, 4, 5]  # FAILED < SUCCEEDED
    assert [t.seq for t in store.trials(exp.id, states=[TrialState.SUCCEEDED], limit=3)] == [1, 3, 4]


def test_pages_after_a_seq_cover_every_trial_once(store: Storage, exp: ExperimentRecord, ranked: list[str]) -> None:
    seen, last = [], 0
    while page := store.trials(exp.id, limit=2, after_seq=last):
        seen += [t.seq for t in page]
        last = page[-1].seq
    assert seen == [1, 2, 3, 4, 5]


def test_intermediate_values_of_a_seq_range(store: Storage, exp: ExperimentRecord, ranked: list[str]) -> None:
    for seq, trial in enumerate(ranked, start=1):
        store.add_metric(trial, 1, "intermediate", 0, float(seq))
    assert store.intermediate_values(exp.id, seqs=(2, 4)) == {ranked[1]: [2.0], ranked[2]: [3.0], ranked[3]: [4.0]}
