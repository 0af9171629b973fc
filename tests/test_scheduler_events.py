"""Events pushed into the broker by anyone (not a worker): a metric that is not finite in every key is
dropped for that trial (issue 17 #1); what is no event of this version (not JSON, an unknown type, a field
missing or ill-typed, a newer version) is logged in one line and acknowledged (issue 14 #2). Either way the
experiment goes on and the trial ends as its worker reported."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from hpoqueue.broker.events import Metric
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.testing.simulation import SimTrial, Simulation
from tests.test_scheduler import config


def _event(**fields: Any) -> str:
    return json.dumps({"trial": "sim-1", "attempt": 1, "ts": 1.0, **fields})


#: (what it is, the stream entry, what the log line names); each would end or change trial sim-1 if applied
GARBAGE = [
    ("not JSON", '{"type": "finished", "trial": "sim-1"', "not JSON"),
    ("not an object", "[1, 2, 3]", "not a JSON object"),
    ("unknown type", _event(type="exploded", reason="exited"), "unknown type 'exploded'"),
    ("missing field", _event(type="metric", step=9, value=0.5, data=None), "lacks kind"),
    ("ill-typed field", _event(type="finished", reason="exited", exit_code="1", signal=None, stop_reason=None,
                               message="m", metrics_rejected=0), "'exit_code'"),
    ("bool for an int", _event(type="metric", kind="intermediate", step=True, value=9.0, data=None), "'step'"),
    ("unknown reason", _event(type="finished", reason="exploded", exit_code=1, signal=None, stop_reason=None,
                              message="m"), "'reason'"),
    ("signal as a number", _event(type="finished", reason="stopped", exit_code=None, signal=15,
                                  stop_reason="user_canceled", message="m"), "'signal'"),
    ("newer version", _event(type="finished", v=2, reason="exited", exit_code=1, signal=None, stop_reason=None,
                             message="m"), "version 2 is newer"),
]


def test_hostile_events_are_dropped_and_the_experiment_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(maxTrialNumber=1, trialConcurrency=1)
    sim = Simulation(cfg, lambda _params: SimTrial(values=[1.0, 2.0, 3.0]))
    for when in (0.5, 1.5):
        sim.cluster.emit_at(when, Metric, "sim-1", 1, kind="intermediate", step=7, value=0.5,
                            data={"default": 0.5, "x": float("nan")})
        sim.cluster.emit_at(when, Metric, "sim-1", 1, kind="intermediate", step=8, value=float("inf"), data=None)
        for _what, raw, _names in GARBAGE:
            sim.cluster.emit_raw_at(when, raw)
    with caplog.at_level(logging.WARNING, logger="hpoqueue.scheduler"):
        result = sim.run()
    (trial,) = result.trials
    assert result.state is ExperimentState.DONE and trial.state is TrialState.SUCCEEDED
    assert trial.exit_code == 0 and trial.final_value == 3.0
    assert [m.value for m in result.storage.metrics(trial.id, kind="intermediate")] == [1.0, 2.0, 3.0]
    unreadable = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(unreadable) == 2 * len(GARBAGE) and all("\n" not in line for line in unreadable)
    for what, _raw, names in GARBAGE:
        assert sum(names in line for line in unreadable) >= 2, (what, unreadable)
