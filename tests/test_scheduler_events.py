"""Events pushed into the broker by anyone (not a worker): a metric that is not finite in every key, or an
event missing its fields, is dropped for that trial; the experiment goes on (issue 17 #1)."""

from __future__ import annotations

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.testing.simulation import SimTrial, Simulation
from tests.test_scheduler import config


def test_hostile_events_are_dropped_and_the_experiment_goes_on() -> None:
    cfg = config(maxTrialNumber=1, trialConcurrency=1)
    sim = Simulation(cfg, lambda _params: SimTrial(values=[1.0, 2.0, 3.0]))
    for when in (0.5, 1.5):
        sim.cluster.emit_at(when, "metric", "sim-1", 1, kind="intermediate", step=7, value=0.5,
                            data={"default": 0.5, "x": float("nan")})
        sim.cluster.emit_at(when, "metric", "sim-1", 1, kind="intermediate", step=8, value=float("inf"), data=None)
        sim.cluster.emit_at(when, "metric", "sim-1", 1, step=9, value=0.5)  # no kind
    result = sim.run()
    (trial,) = result.trials
    assert result.state is ExperimentState.DONE and trial.state is TrialState.SUCCEEDED
    assert [m.value for m in result.storage.metrics(trial.id, kind="intermediate")] == [1.0, 2.0, 3.0]
