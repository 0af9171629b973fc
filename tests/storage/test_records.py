"""Rows become records through one generic mapping: a record's fields are columns of its table, by name."""

from __future__ import annotations

from dataclasses import fields

import pytest
from sqlalchemy import inspect

from hpoqueue.states import TrialState
from hpoqueue.storage import EventRecord, ExperimentRecord, MetricRecord, Storage, TrialRecord
from hpoqueue.storage._models import Base, EventRow, ExperimentRow, MetricRow, TrialRow

PAIRS = [(ExperimentRecord, ExperimentRow), (TrialRecord, TrialRow), (MetricRecord, MetricRow), (EventRecord, EventRow)]


@pytest.mark.parametrize(("record", "model"), PAIRS, ids=[r.__name__ for r, _ in PAIRS])
def test_each_record_field_is_a_column_of_its_table(record: type, model: type[Base]) -> None:
    columns = {c.key for c in inspect(model).column_attrs}
    assert {f.name for f in fields(record)} <= columns


def test_records_carry_what_was_stored(sqlite_url: str) -> None:
    with Storage(sqlite_url) as store:
        exp = store.create_experiment("r", name="rec", config={"a": 1}, work_dir="/tmp/r", optimize_mode="maximize",
                                      concurrency=3, max_trial_number=7, max_duration=60.0)
        assert (exp.id, exp.name, exp.config, exp.optimize_mode, exp.concurrency, exp.max_trial_number,
                exp.max_duration) == ("r", "rec", {"a": 1}, "maximize", 3, 7, 60.0)
        [trial] = store.create_trials("r", [{"x": 0.5}])
        store.transition(trial.id, TrialState.SUCCEEDED, expected=[TrialState.WAITING], final_value=0.25,
                         host="box1")
        got = store.get_trial(trial.id)
        assert (got.id, got.experiment_id, got.seq, got.params, got.state, got.final_value, got.host) == (
            "r-1", "r", 1, {"x": 0.5}, TrialState.SUCCEEDED, 0.25, "box1")
