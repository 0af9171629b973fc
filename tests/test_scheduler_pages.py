"""A resume reads its trials page by page and rebuilds the same state as from one read of them all."""

from __future__ import annotations

import pytest

from hpoqueue import scheduler
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.testing.simulation import SimTrial, SimulatedCrash, Simulation
from tests.test_scheduler import Recording, config


def test_resume_across_pages_rebuilds_tuner_curves_counts_and_flights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "LOAD_PAGE", 2)
    cfg = config(maxTrialNumber=None, trialConcurrency=3,
                 searchSpace={"a": {"_type": "choice", "_value": list(range(12))}})
    sim = Simulation(cfg, lambda p: SimTrial(values=[float(p["a"]) + k for k in range(3)]))
    sim.cluster.crash_at = 4.0
    with pytest.raises(SimulatedCrash):
        sim.run()
    before = sim.storage.trials("sim")
    curves = sim.storage.intermediate_values("sim")
    assert len(before) > 2 * scheduler.LOAD_PAGE and any(not t.state.is_finished() for t in before)
    sim.cluster.crash_at = None
    tuner = Recording(sim.tuner(), sim)
    result = sim.run(tuner)
    assert tuner.rebuilt is not None
    assert [(r.seq, r.state, r.intermediate) for r in tuner.rebuilt] == [
        (t.seq, t.state, tuple(curves.get(t.id, []))) for t in before]
    assert sorted(t.params["a"] for t in result.trials) == list(range(12))  # in-flight ones finished, none twice
    assert all(t.state is TrialState.SUCCEEDED and t.attempt == 1 for t in result.trials)
    assert result.state is ExperimentState.DONE
