"""The real Scheduler on simulated workers and clock (hpoqueue.testing.simulation): budgets, slots, retries, lost
trials, kills, stop, live updates, assessors, resume and stray events, in simulated time."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.assessors import ASSESSORS
from hpoqueue.broker import control
from hpoqueue.broker.events import Finished, Metric, Started
from hpoqueue.config.experiment_config import ExperimentConfig, config_from_dict
from hpoqueue.experiment.manual_trials import ManualQueue
from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from hpoqueue.testing.simulation import SimResult, SimTrial, SimulatedCrash, Simulation
from hpoqueue.tuners import TUNERS, BaseTuner


def config(**fields: Any) -> ExperimentConfig:
    raw: dict[str, Any] = {"trialCommand": "simulated", "trialConcurrency": 2, "maxTrialNumber": 6,
                           "tuner": {"name": "Random", "classArgs": {"seed": 1}},
                           "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}
    raw.update(fields)
    return config_from_dict(raw, source="test")


def batch(*configs: dict[str, Any]) -> dict[str, Any]:
    """A BatchTuner search space running `configs` in order."""
    return {"combine_params": {"_type": "choice", "_value": list(configs)}}


class Recording(BaseTuner):
    """Wraps a real tuner and records what the scheduler asks and tells it."""

    def __init__(self, inner: BaseTuner, sim: Simulation) -> None:
        super().__init__(inner.space, optimize_mode=inner.optimize_mode, seed=inner.seed)
        self.inner, self.sim = inner, sim
        self.asks: list[tuple[int, int]] = []  #: (n asked for, trials in flight then)
        self.suggested: list[dict[str, Any]] = []
        self.observed: list[TrialResult] = []
        self.rebuilt: list[TrialResult] | None = None
        self.told: list[tuple[int | None, int]] = []  #: (trials left as told, trials suggested by then)

    def set_trials_left(self, n: int | None) -> None:
        self.told.append((n, len(self.suggested)))
        self.inner.set_trials_left(n)

    def suggest(self, n: int) -> list[Suggestion]:
        assert self.sim.current is not None
        self.asks.append((n, len(self.sim.current.flights)))
        out = self.inner.suggest(n)
        self.suggested += [s.params for s in out]
        return out

    def observe(self, result: TrialResult) -> None:
        self.observed.append(result)
        self.inner.observe(result)

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        self.rebuilt = list(trials)
        self.inner.rebuild(trials)

    @property
    def exhausted(self) -> bool:
        return self.inner.exhausted


def run(cfg: ExperimentConfig, trial_fn: Callable[[dict[str, Any]], SimTrial], **options: Any
        ) -> tuple[SimResult, Recording]:
    sim = Simulation(cfg, trial_fn, **options)
    tuner = Recording(sim.tuner(), sim)
    return sim.run(tuner), tuner


def curve(params: dict[str, Any], steps: int = 3, step_time: float = 1.0) -> SimTrial:
    x = float(params.get("x", 0.5))
    return SimTrial(values=[x + 1.0 / (k + 1) for k in range(steps)], step_time=step_time)


def hang_first(trial: SimTrial, times: int = 1) -> Callable[[dict[str, Any]], SimTrial]:
    """Each configuration's first `times` attempts hang after one step (the worker dies); then `trial`."""
    calls: Counter[str] = Counter()

    def fn(params: dict[str, Any]) -> SimTrial:
        key = json.dumps(params, sort_keys=True)
        calls[key] += 1
        return SimTrial(values=[9.0], outcome="hang") if calls[key] <= times else trial
    return fn


# ---- slots, binding, budgets ---------------------------------------------------------------------------
def test_concurrency_is_never_exceeded_and_tuner_is_asked_only_for_free_slots() -> None:
    cfg = config(trialConcurrency=3, maxTrialNumber=12)
    result, tuner = run(cfg, lambda p: curve(p, steps=2 + int(p["x"] * 6)))
    assert result.cluster.max_running == 3
    assert all(n >= 1 and in_flight + n <= 3 for n, in_flight in tuner.asks)
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * 12


def test_the_tuner_is_told_how_many_trials_are_left_before_each_ask() -> None:
    """TPE spends the budget's last rounds around the best trial: it must know maxTrialNumber less the
    trials created so far, anew before every suggest."""
    cfg = config(trialConcurrency=3, maxTrialNumber=12)
    _, tuner = run(cfg, lambda p: curve(p, steps=2 + int(p["x"] * 6)))
    assert len(tuner.told) == len(tuner.asks) > 1
    assert [n for n, _ in tuner.told] == [12 - suggested for _, suggested in tuner.told]


def test_trials_go_only_where_live_workers_have_room() -> None:
    cfg = config(trialConcurrency=6, maxTrialNumber=9)
    result, _ = run(cfg, lambda p: curve(p, steps=3), queues=["gpu0", "gpu1", "gpu2"],
                    capacity={"gpu0": 2, "gpu1": 1})
    queues = [t.queue for t in result.trials]
    assert set(queues) == {"gpu0", "gpu1"}  # no live worker consumes gpu2: nothing is sent there
    assert result.cluster.max_running == 3  # the announced capacity, not the concurrency of 6
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * 9


def test_each_trial_runs_exactly_the_params_the_tuner_suggested() -> None:
    result, tuner = run(config(maxTrialNumber=5), curve)
    specs = [spec for _, spec in result.cluster.dispatched]
    assert [s.params for s in specs] == tuner.suggested
    assert {t.id: t.params for t in result.trials} == {s.trial_id: s.params for s in specs}
    assert sorted(r.seq for r in tuner.observed) == [1, 2, 3, 4, 5]


def test_each_attempt_carries_the_limits_the_config_sets_for_its_worker() -> None:
    """The worker enforces maxTrialNumberPerGpu, trialGpuNumber and maxTrialDuration from the spec alone."""
    cfg = config(maxTrialNumber=3, trialGpuNumber=1, maxTrialDuration="7s", metricName="loss",
                 trainingService={"platform": "local", "maxTrialNumberPerGpu": 2, "useActiveGpu": True})
    sim = Simulation(cfg, curve, queues=["gpu0", "gpu1"])
    sim.run()
    specs = [spec for _, spec in sim.cluster.dispatched]
    assert len(specs) == 3
    for spec in specs:
        assert (spec.gpu_cap, spec.gpu_number, spec.timeout, spec.use_active_gpu, spec.metric_name) == \
            (2, 1, 7.0, True, "loss")


def test_max_trial_number_counts_failed_trials() -> None:
    result, tuner = run(config(maxTrialNumber=6),
                        lambda p: SimTrial(values=[1.0], outcome=1 if p["x"] < 0.5 else 0))
    assert len(result.trials) == 6 and result.state is ExperimentState.DONE
    failed = result.by_state(TrialState.FAILED)
    assert failed and all(t.attempt == 1 and t.final_value is None for t in failed)
    assert len(result.cluster.dispatched) == 6  # failures are not retried
    assert sorted(r.state for r in tuner.observed) == sorted(t.state for t in result.trials)


def test_max_experiment_duration_stops_creating_trials_but_lets_running_ones_finish() -> None:
    cfg = config(maxTrialNumber=None, maxExperimentDuration="10s")
    result, _ = run(cfg, lambda p: curve(p, steps=3, step_time=1.5))
    times = [t for t, _ in result.cluster.dispatched]
    assert max(times) < 10 < result.sim_time
    assert result.state is ExperimentState.DONE
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * len(result.trials)


# ---- lost workers and retries --------------------------------------------------------------------------
def test_lost_trial_is_retried_with_the_same_params_as_attempt_two() -> None:
    cfg = config(maxTrialNumber=2, trialConcurrency=1, heartbeatTimeout="10s", maxTrialRetries=1)
    result, tuner = run(cfg, hang_first(SimTrial(values=[0.5, 0.25])))
    assert [(t.state, t.attempt, t.final_value) for t in result.trials] == [(TrialState.SUCCEEDED, 2, 0.25)] * 2
    for trial in result.trials:
        attempts = [s for _, s in result.cluster.dispatched if s.trial_id == trial.id]
        assert [s.attempt for s in attempts] == [1, 2] and attempts[0].params == attempts[1].params
        assert [e.kind for e in result.storage.events(trial.id)].count("lost") == 1
    assert [r.state for r in tuner.observed] == [TrialState.SUCCEEDED] * 2  # observed once, at the end


def test_trial_lost_more_than_max_trial_retries_times_is_lost() -> None:
    cfg = config(maxTrialNumber=1, heartbeatTimeout="5s", maxTrialRetries=2)
    result, tuner = run(cfg, hang_first(SimTrial(values=[1.0]), times=99))
    (trial,) = result.trials
    assert trial.state is TrialState.LOST and trial.attempt == 3
    assert [s.attempt for _, s in result.cluster.dispatched] == [1, 2, 3]
    assert len({json.dumps(s.params) for _, s in result.cluster.dispatched}) == 1
    assert [(r.state, r.value) for r in tuner.observed] == [(TrialState.LOST, None)]


def test_heartbeat_timeout_is_respected() -> None:
    # beats every 2 s; the worker dies right after its beat at t=4; timeout 30 s
    cfg = config(maxTrialNumber=1, heartbeatTimeout="30s", maxTrialRetries=0)
    result, _ = run(cfg, lambda p: SimTrial(values=[1.0, 2.0], step_time=2.0, outcome="hang"))
    (lost_at,) = [t for t, _, reason in result.cluster.stops if reason == "lost"]
    assert 30 < lost_at - 4.0 <= 33
    assert result.trials[0].state is TrialState.LOST


def test_long_trial_that_keeps_heartbeating_is_not_lost() -> None:
    cfg = config(maxTrialNumber=1, heartbeatTimeout="5s")
    result, _ = run(cfg, lambda p: SimTrial(values=[1.0] * 40))
    assert [(t.state, t.attempt) for t in result.trials] == [(TrialState.SUCCEEDED, 1)]


# ---- assessors ---------------------------------------------------------------------------------------------
GOOD = [{"x": 0.3}, {"x": 0.2}, {"x": 0.1}]  # each better than the last: even ASHA keeps them
BAD = [{"x": 5.0}, {"x": 6.0}]


def sloped(params: dict[str, Any]) -> SimTrial:
    """Good configs fall towards x; bad ones stay high: 10 steps each."""
    x = params["x"]
    return SimTrial(values=[x + (1.0 if x < 1 else 0.0) / (k + 1) - 0.01 * k for k in range(10)])


@pytest.mark.parametrize("name", ASSESSORS.names())
def test_assessor_stops_bad_trials_early(name: str) -> None:
    args = {"Medianstop": {"start_step": 2}, "Curvefitting": {"epoch_num": 10, "start_step": 4}}
    cfg = config(trialConcurrency=1, maxTrialNumber=None, tuner={"name": "BatchTuner"},
                 searchSpace=batch(*GOOD, *BAD), assessor={"name": name, "classArgs": args.get(name, {})})
    result, tuner = run(cfg, sloped)
    states = [t.state for t in result.trials]
    assert states[:3] == [TrialState.SUCCEEDED] * 3
    assert TrialState.EARLY_STOPPED in states[3:]
    assert result.trial_epochs < 50
    observed = {r.seq: r for r in tuner.observed}
    for trial in result.by_state(TrialState.EARLY_STOPPED):
        values = [m.value for m in result.storage.metrics(trial.id, kind="intermediate")]
        assert len(values) < 10 and trial.final_value == values[-1]
        assert observed[trial.seq].value == values[-1]


def test_early_stop_is_recorded_before_the_stop_is_sent() -> None:
    storage = Storage("sqlite://")
    seen: list[tuple[str, TrialState]] = []
    cfg = config(trialConcurrency=1, maxTrialNumber=None, tuner={"name": "BatchTuner"},
                 searchSpace=batch(*GOOD, *BAD), assessor={"name": "Medianstop", "classArgs": {"start_step": 2}})

    def on_stop(attempt: str, reason: str) -> None:
        seen.append((reason, storage.get_trial(attempt.rsplit("-a", 1)[0]).state))
    result, tuner = run(cfg, sloped, storage=storage, on_stop=on_stop)
    assert seen and all(s == ("early_stopped", TrialState.EARLY_STOPPED) for s in seen)
    stopped = result.by_state(TrialState.EARLY_STOPPED)
    assert [t.seq for t in stopped] == [4, 5]
    assert all("early_stopped" in (t.exit_reason or "") for t in stopped)
    kinds = [e.kind for e in storage.events(stopped[0].id)]
    assert kinds.index("assessor_stop") < kinds.index("finished")


# ---- control commands --------------------------------------------------------------------------------------
def test_kill_cancels_one_running_trial() -> None:
    cfg = config(maxTrialNumber=4)
    sim = Simulation(cfg, lambda p: curve(p, steps=5))
    sim.cluster.control_at(2.5, control.Kill(trial="sim-1"))
    result = sim.run()
    states = {t.seq: t.state for t in result.trials}
    assert states == {1: TrialState.USER_CANCELED, 2: TrialState.SUCCEEDED, 3: TrialState.SUCCEEDED,
                      4: TrialState.SUCCEEDED}
    assert [(a, r) for _, a, r in result.cluster.stops] == [("sim-1-a1", "user_canceled")]
    assert result.state is ExperimentState.DONE


def test_a_killed_trial_whose_worker_then_vanishes_stays_killed_and_is_not_retried() -> None:
    cfg = config(maxTrialNumber=1, maxTrialRetries=2, heartbeatTimeout="10s")
    # the worker dies silently after 3 steps (heartbeats included); the kill comes after that
    sim = Simulation(cfg, lambda p: SimTrial(values=[1.0, 2.0, 3.0], outcome="hang"))
    sim.cluster.control_at(3.5, control.Kill(trial="sim-1"))
    result = sim.run()
    trial = result.storage.get_trial("sim-1")
    assert trial.state is TrialState.USER_CANCELED and trial.attempt == 1
    assert len(result.cluster.dispatched) == 1  # the kill stands: no retry of a trial the user stopped
    assert result.state is ExperimentState.DONE


def test_stop_cancels_everything_in_flight_and_creates_nothing_more() -> None:
    cfg = config(maxTrialNumber=10, trialConcurrency=3)
    sim = Simulation(cfg, lambda p: curve(p, steps=4))
    sim.cluster.control_at(6.5, control.Stop())
    result = sim.run()
    assert result.state is ExperimentState.STOPPED
    assert sim.storage.get_experiment("sim").state is ExperimentState.STOPPED
    assert max(t for t, _ in result.cluster.dispatched) < 6.5
    assert Counter(t.state for t in result.trials) == {TrialState.SUCCEEDED: 3, TrialState.USER_CANCELED: 3}


def test_update_changes_concurrency_while_running() -> None:
    cfg = config(maxTrialNumber=8, trialConcurrency=1)
    sim = Simulation(cfg, lambda p: curve(p, steps=3))
    sim.cluster.control_at(5.0, control.Update(concurrency=3))
    result = sim.run()
    early = sorted(t for t, _ in result.cluster.dispatched if t < 5.0)
    assert early == [0.0, 3.0]  # one at a time before the update
    assert result.cluster.max_running == 3
    assert sim.storage.get_experiment("sim").concurrency == 3


# ---- resume, stray events, best value ----------------------------------------------------------------------
def test_resume_after_a_crash_continues_seqs_and_rebuilds_the_tuner() -> None:
    cfg = config(maxTrialNumber=None, trialConcurrency=3,
                 searchSpace={"a": {"_type": "choice", "_value": list(range(12))}})
    sim = Simulation(cfg, lambda p: SimTrial(values=[float(p["a"])] * 3))
    sim.cluster.crash_at = 4.0
    with pytest.raises(SimulatedCrash):
        sim.run()
    before = sim.storage.trials("sim")
    assert any(not t.state.is_finished() for t in before)
    sim.cluster.crash_at = None
    tuner = Recording(sim.tuner(), sim)
    result = sim.run(tuner)
    assert tuner.rebuilt is not None and [r.seq for r in tuner.rebuilt] == [t.seq for t in before]
    assert [t.seq for t in result.trials] == list(range(1, 13))
    assert sorted(t.params["a"] for t in result.trials) == list(range(12))  # no config twice
    assert all(t.state is TrialState.SUCCEEDED and t.attempt == 1 for t in result.trials)
    assert result.state is ExperimentState.DONE


def test_a_configuration_enqueued_by_hand_survives_a_crash_before_its_trial_is_recorded(tmp_path: Path) -> None:
    cfg = config(maxTrialNumber=4, experimentWorkingDirectory=str(tmp_path))
    sim = Simulation(cfg, lambda p: SimTrial(values=[float(p["x"])]))
    (tmp_path / "sim").mkdir()
    ManualQueue(tmp_path / "sim").add([{"x": 0.25}, {"x": 0.75}])
    record = sim.storage.create_trials

    def dies_before_recording(*args: Any, **kwargs: Any) -> Any:
        raise SimulatedCrash("the scheduler died between taking the configurations and recording them")
    sim.storage.create_trials = dies_before_recording  # type: ignore[method-assign]
    with pytest.raises(SimulatedCrash):
        sim.run()
    sim.storage.create_trials = record  # type: ignore[method-assign]
    result = sim.run()
    assert [t.params for t in result.trials[:2]] == [{"x": 0.25}, {"x": 0.75}]  # neither lost, each once
    assert len(result.trials) == 4 and ManualQueue(tmp_path / "sim").pending() == 0


def test_a_configuration_enqueued_while_running_survives_a_crash_before_its_batch_commits(tmp_path: Path) -> None:
    """Enqueued while trials run, the configuration's trial is recorded in the transaction of a batch of events:
    it leaves the queue only once that transaction commits."""
    cfg = config(maxTrialNumber=3, trialConcurrency=1, experimentWorkingDirectory=str(tmp_path))
    (tmp_path / "sim").mkdir()
    queue, added = ManualQueue(tmp_path / "sim"), []

    def trial(params: dict[str, Any]) -> SimTrial:
        if not added:
            added.append(queue.add([{"x": 0.5}]))  # while the first trial runs
        return SimTrial(values=[float(params["x"])])
    sim = Simulation(cfg, trial)
    record, transaction = sim.storage.create_trials, sim.storage.transaction
    armed: list[bool] = []

    def recording(exp_id: str, params_list: Any, *args: Any, **kwargs: Any) -> Any:
        armed.append({"x": 0.5} in params_list)
        return record(exp_id, params_list, *args, **kwargs)

    @contextmanager
    def dies_before_commit() -> Iterator[None]:
        with transaction():
            yield
            if any(armed):  # the batch recorded the enqueued configuration's trial: die before the commit
                raise SimulatedCrash("the scheduler died before its batch committed")
    sim.storage.create_trials = recording  # type: ignore[method-assign]
    sim.storage.transaction = dies_before_commit  # type: ignore[method-assign]
    with pytest.raises(SimulatedCrash):
        sim.run()
    sim.storage.create_trials, sim.storage.transaction = record, transaction  # type: ignore[method-assign]
    assert queue.pending() == 1  # its trial was rolled back with the batch: it waits still
    result = sim.run()
    assert [t.params for t in result.trials].count({"x": 0.5}) == 1 and queue.pending() == 0


def test_a_resumed_scheduler_keeps_counting_toward_max_trial_number() -> None:
    """maxTrialNumber counts the trials created before the crash: the resumed run creates only the rest."""
    cfg = config(maxTrialNumber=7, trialConcurrency=2,
                 searchSpace={"a": {"_type": "choice", "_value": list(range(12))}})
    sim = Simulation(cfg, lambda p: SimTrial(values=[float(p["a"])] * 3))
    sim.cluster.crash_at = 4.0
    with pytest.raises(SimulatedCrash):
        sim.run()
    created_before = len(sim.storage.trials("sim"))
    assert 0 < created_before < 7
    sim.cluster.crash_at = None
    tuner = Recording(sim.tuner(), sim)
    result = sim.run(tuner)
    assert [t.seq for t in result.trials] == list(range(1, 8))
    assert len(tuner.suggested) == 7 - created_before
    assert result.state is ExperimentState.DONE


def test_a_resumed_scheduler_sends_again_the_trials_no_worker_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial recorded WAITING whose message no worker took before the crash may have lost it (a broker
    restarted without persistence): the resumed scheduler sends it again; a second copy is a no-op. It asks
    the broker about every attempt in flight at once (one round trip), not one attempt at a time."""
    cfg = config(maxTrialNumber=4, trialConcurrency=2)
    sim = Simulation(cfg, lambda p: curve(p, steps=1), start_delay=5.0)
    sim.cluster.crash_at = 5.5  # trials 1-2 ended at 6 s; 3-4 were just sent, to start at 11 s
    with pytest.raises(SimulatedCrash):
        sim.run()
    unclaimed = {t.id for t in sim.storage.trials("sim") if t.state is TrialState.WAITING}
    assert len(unclaimed) == 2
    sent_before = len(sim.cluster.dispatched)
    sim.cluster.crash_at = None
    asked: list[object] = []
    one_at_a_time, all_at_once = sim.cluster.is_claimed, sim.cluster.claimed
    monkeypatch.setattr(sim.cluster, "is_claimed", lambda a: asked.append(a) or one_at_a_time(a))
    monkeypatch.setattr(sim.cluster, "claimed", lambda ids: asked.append(sorted(ids)) or all_at_once(ids))
    result = sim.run()
    assert asked[0] == sorted(f"{trial}-a1" for trial in unclaimed)  # the resume's one question
    assert {spec.trial_id for _, spec in sim.cluster.dispatched[sent_before:]} >= unclaimed
    assert [t.state for t in result.trials] == [TrialState.SUCCEEDED] * 4


def test_events_read_again_after_a_crash_count_once_in_the_curves() -> None:
    """A crash between persisting events and acknowledging them makes the resumed scheduler read them
    again: the curves the tuner and the assessors get must hold each result once, as the record does."""
    cfg = config(maxTrialNumber=6, trialConcurrency=3)
    sim = Simulation(cfg, lambda p: SimTrial(values=[p["x"] + k for k in range(4)]))
    sim.cluster.crash_at = 2.5
    with pytest.raises(SimulatedCrash):
        sim.run()
    in_flight = [t.id for t in sim.storage.trials("sim") if not t.state.is_finished()]
    assert in_flight
    sim.cluster.crash_at = None
    tuner = Recording(sim.tuner(), sim)
    result = sim.run(tuner)
    seqs = {t.seq: t for t in result.trials}
    observed = [r for r in tuner.observed if seqs[r.seq].id in in_flight]
    assert len(observed) == len(in_flight)
    for seen in observed:
        trial = seqs[seen.seq]
        stored = [m.value for m in sim.storage.metrics(trial.id, kind="intermediate") if m.attempt == trial.attempt]
        assert list(seen.intermediate) == stored == pytest.approx([trial.params["x"] + k for k in range(4)])


def test_a_new_search_space_after_a_resume_sees_every_finished_trial() -> None:
    """Without an assessor the scheduler keeps no finished results in memory (a long experiment's resume
    would hold them all); `update --search-space` reads them from storage, so the rebuilt tuner still
    knows every configuration tried before the crash and proposes none of them again."""
    cfg = config(maxTrialNumber=None, trialConcurrency=3,
                 searchSpace={"a": {"_type": "choice", "_value": list(range(12))}})
    sim = Simulation(cfg, lambda p: SimTrial(values=[float(p["a"])] * 3))
    sim.cluster.crash_at = 7.0
    with pytest.raises(SimulatedCrash):
        sim.run()
    assert sum(t.state.is_finished() for t in sim.storage.trials("sim")) >= 3
    sim.cluster.crash_at = None
    sim.cluster.control_at(8.0, control.SearchSpace(space={"a": {"_type": "choice", "_value": list(range(16))}}))
    result = sim.run()
    assert result.scheduler.history == {}
    assert sorted(t.params["a"] for t in result.trials) == list(range(16))  # each value once, old ones too
    assert all(t.state is TrialState.SUCCEEDED for t in result.trials)


@pytest.mark.parametrize("reads_curves", [True, False])
def test_a_resume_reads_finished_curves_only_for_a_tuner_that_reads_them(reads_curves: bool) -> None:
    cfg = config(maxTrialNumber=6, trialConcurrency=3)
    sim = Simulation(cfg, lambda p: SimTrial(values=[p["x"] + k for k in range(4)]))
    sim.cluster.crash_at = 6.5
    with pytest.raises(SimulatedCrash):
        sim.run()
    before = {t.seq: t for t in sim.storage.trials("sim")}
    assert any(t.state.is_finished() for t in before.values()) and any(
        not t.state.is_finished() for t in before.values())
    curves = {seq: [m.value for m in sim.storage.metrics(t.id, kind="intermediate")] for seq, t in before.items()}
    sim.cluster.crash_at = None
    tuner = Recording(sim.tuner(), sim)
    tuner.reads_curves = reads_curves
    assert sim.run(tuner).state is ExperimentState.DONE
    assert tuner.rebuilt is not None
    for seen in tuner.rebuilt:  # a trial in flight always goes on with its curve
        assert list(seen.intermediate) == (curves[seen.seq] if reads_curves or not seen.state.is_finished() else [])
    assert any(seen.state.is_finished() and curves[seen.seq] for seen in tuner.rebuilt)


def test_duplicate_and_late_events_change_nothing() -> None:
    cfg = config(maxTrialNumber=1, trialConcurrency=1, heartbeatTimeout="3s")
    trial_fn = hang_first(SimTrial(values=[float(k) for k in range(1, 9)]))

    def outcome(sim: Simulation) -> tuple[Any, ...]:
        result = sim.run()
        (trial,) = result.trials
        metrics = [(m.attempt, m.kind, m.step, m.value) for m in result.storage.metrics(trial.id)]
        return trial.state, trial.attempt, trial.final_value, metrics

    baseline = outcome(Simulation(cfg, hang_first(SimTrial(values=[float(k) for k in range(1, 9)]))))
    noisy = Simulation(cfg, trial_fn)
    for when in (8.0, 9.0):
        noisy.cluster.emit_at(when, Metric, "sim-1", 1, kind="intermediate", step=1, value=999.0, data=None)
        noisy.cluster.emit_at(when, Metric, "sim-1", 2, kind="intermediate", step=0, value=999.0, data=None)
        noisy.cluster.emit_at(when, Finished, "sim-1", 1, reason="exited", exit_code=1, signal=None,
                              stop_reason=None, message="exited with 1")
        noisy.cluster.emit_at(when, Started, "sim-1", 2, host="elsewhere", pid=1, gpus=None, queue="cpu",
                              log_dir=None, machine=None)
    assert outcome(noisy) == baseline
    assert baseline[:3] == (TrialState.SUCCEEDED, 2, 8.0)


@pytest.mark.parametrize(("mode", "best"), [("minimize", (1.0, "sim-2")), ("maximize", (3.0, "sim-1"))])
def test_best_value_follows_optimize_mode(mode: str, best: tuple[float, str]) -> None:
    finals = [{"v": 3.0}, {"v": 1.0}, {"v": 2.0}, {"v": -5.0, "fail": True}, {"v": 9.0, "fail": True}]
    cfg = config(maxTrialNumber=None, tuner={"name": "BatchTuner", "classArgs": {"optimize_mode": mode}},
                 searchSpace=batch(*finals))
    result, _ = run(cfg, lambda p: SimTrial(values=[p["v"]], outcome=1 if p.get("fail") else 0))
    assert result.scheduler.best == best
    assert result.scheduler.progress(result.state).best_value == best[0]


# ---- every tuner ---------------------------------------------------------------------------------------------
TUNER_ARGS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "TPE": lambda tmp: {"n_startup_jobs": 3},
    "GP": lambda tmp: {"cold_start_num": 3, "selection_num_warm_up": 100},
    "Evolution": lambda tmp: {"population_size": 4},
    "PBT": lambda tmp: {"all_checkpoint_dir": str(tmp / "ckpt"), "population_size": 4},
}


@pytest.mark.parametrize("name", TUNERS.names())
def test_every_tuner_runs_an_experiment_to_its_end(name: str, tmp_path: Path) -> None:
    space = batch(*[{"x": k / 10} for k in range(8)]) if name == "BatchTuner" else \
        {"x": {"_type": "uniform", "_value": [0, 1]}, "n": {"_type": "choice", "_value": [1, 2, 3]}}
    cfg = config(maxTrialNumber=8, trialConcurrency=2, searchSpace=space,
                 tuner={"name": name, "classArgs": {"seed": 3, **TUNER_ARGS.get(name, lambda t: {})(tmp_path)}})
    result, tuner = run(cfg, lambda p: curve(p, steps=int(p.get("TRIAL_BUDGET", 3)) % 5 + 1))
    assert result.state is ExperimentState.DONE
    assert len(result.trials) == 8 and all(t.state is TrialState.SUCCEEDED for t in result.trials)
    assert sorted(r.seq for r in tuner.observed) == list(range(1, 9))  # each observed exactly once
    assert [s.params for _, s in result.cluster.dispatched] == tuner.suggested
    assert result.cluster.max_running <= 2
