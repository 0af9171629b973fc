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


def test_a_refused_event_costs_only_itself_when_it_shares_a_batch(caplog: pytest.LogCaptureFixture) -> None:
    """Events are applied a batch at a time. A metric the scheduler refuses comes after the end of trial 1 and
    the results of trials 2-4 in one batch: the batch is undone and applied again event by event. Every
    trial ends SUCCEEDED once, in storage and in the scheduler's counts, the tuner sees each once, and only
    the bad metric is missing."""
    cfg = config(maxTrialNumber=4, trialConcurrency=4)
    curves = iter([[1.0, 2.0, 3.0]] + [[1.0, 2.0, 3.0, 4.0]] * 3)  # trial 1 ends while the others run
    sim = Simulation(cfg, lambda _params: SimTrial(values=next(curves)))
    bad = {"kind": "intermediate", "step": 9, "value": float("nan"), "data": None}
    sim.cluster.at(3.0, lambda: sim.cluster.emit_at(3.0, Metric, "sim-4", 1, **bad))  # after the others of 3.0
    tuner, observed = sim.tuner(), []
    observe = tuner.observe
    tuner.observe = lambda trial: (observed.append(trial.seq), observe(trial))  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="hpoqueue.scheduler"):
        result = sim.run(tuner)
    assert any("applying them one at a time" in r.getMessage() for r in caplog.records)  # the batch was refused
    assert result.state is ExperimentState.DONE
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * 4
    assert [t.final_value for t in result.trials] == [3.0, 4.0, 4.0, 4.0]
    for trial in result.trials:
        curve = [m.value for m in result.storage.metrics(trial.id, kind="intermediate")]
        assert curve == ([1.0, 2.0, 3.0] if trial.seq == 1 else [1.0, 2.0, 3.0, 4.0])
        assert [e.kind for e in result.storage.events(trial.id)].count("finished") == 1
    counts = result.scheduler.counts
    assert counts[TrialState.SUCCEEDED] == 4 and counts[TrialState.RUNNING] == counts[TrialState.WAITING] == 0
    assert sorted(observed) == [1, 2, 3, 4]
