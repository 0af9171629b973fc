"""The scheduler SIGKILLed and resumed, and the embedded Redis stopped and started again mid-experiment:
every trial ends SUCCEEDED, each ran once, and nothing is left running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.states import ExperimentState, TrialState
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(180)]

TRIALS = 5


def _pid(path: Path) -> int:
    return int(path.read_text().strip())


def _assert_all_ran_once_and_succeeded(chaos: ChaosProject, exp_id: str) -> None:
    storage = chaos.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    trials = storage.trials(exp_id)
    assert [t.seq for t in trials] == list(range(1, TRIALS + 1))  # sequence numbers grow, none reused
    assert all(t.state is TrialState.SUCCEEDED and t.attempt == 1 for t in trials), trials
    runs = chaos.executions()
    assert {t.id: len(runs.get(t.id, [])) for t in trials} == {t.id: 1 for t in trials}
    for trial in trials:
        assert trial.final_value == pytest.approx(runs[trial.id][0]["params"]["x"])


def _assert_nothing_left(chaos: ChaosProject, exp_dir: Path, pids: list[int]) -> None:
    pids = pids + [r["pid"] for runs in chaos.executions().values() for r in runs]
    wait_for(lambda: not any(alive(p) for p in pids), 20, f"processes {pids} to exit")
    assert not list((exp_dir / "workers").glob("*.pid"))


def _killed_scheduler(chaos: ChaosProject, sleep: float) -> tuple[str, Path, list[int]]:
    """An experiment whose `submit` was SIGKILLed while two trials of `sleep` s ran: (id, directory, pids of
    its Redis and worker)."""
    config = chaos.chaos_config(maxTrialNumber=TRIALS, trialConcurrency=2,
                                searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                                             "sleep": {"_type": "choice", "_value": [sleep]}})
    submit = chaos.background("submit", str(config), "--quiet")
    exp_id = chaos.wait_experiment(30)
    wait_for(lambda: len(chaos.executions()) >= 2, 60, "two trials to start")
    submit.send_signal(signal.SIGKILL)
    submit.wait(10)
    exp_dir = chaos.exp_dir(exp_id)
    return exp_id, exp_dir, [_pid(exp_dir / "broker" / "redis.pid"), _pid(exp_dir / "workers" / "cpu.pid")]


def test_resume_after_the_scheduler_is_killed_records_what_finished_meanwhile(chaos: ChaosProject) -> None:
    exp_id, exp_dir, [redis_pid, worker_pid] = _killed_scheduler(chaos, sleep=3)
    orphaned = [t.id for t in chaos.storage().trials(exp_id) if not t.state.is_finished()]
    assert orphaned
    # the trials go on without the scheduler; their results wait in Redis
    wait_for(lambda: all(r["ended"] for rs in chaos.executions().values() for r in rs), 30,
             "the running trials to finish while no scheduler runs")
    assert all(not t.state.is_finished() for t in chaos.storage().trials(exp_id) if t.id in orphaned)

    resume = chaos.background("resume", exp_id, "--quiet")
    wait_for(lambda: chaos.storage().get_trial(orphaned[0]).state.is_finished(), 60, "resume to record them")
    assert _pid(exp_dir / "broker" / "redis.pid") == redis_pid  # the same Redis and worker were reused
    assert _pid(exp_dir / "workers" / "cpu.pid") == worker_pid
    assert resume.wait(120) == 0
    _assert_all_ran_once_and_succeeded(chaos, exp_id)
    _assert_nothing_left(chaos, exp_dir, [redis_pid, worker_pid])


def test_stop_after_the_scheduler_is_killed_stops_everything(chaos: ChaosProject) -> None:
    """`hpoqueue stop` right after the scheduler died (its word that it is alive has not expired yet): the
    experiment and its trials are recorded stopped, and its trials, worker and Redis are stopped."""
    exp_id, exp_dir, helpers = _killed_scheduler(chaos, sleep=60)
    assert "scheduler   not running (killed?)" in chaos.cli("status", exp_id, check=True).stdout
    run = chaos.cli("stop", exp_id, check=True)
    assert "no scheduler was running" in run.stdout and "2 trial(s) recorded USER_CANCELED" in run.stdout
    storage = chaos.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.STOPPED
    assert [t.state for t in storage.trials(exp_id)] == [TrialState.USER_CANCELED] * 2
    _assert_nothing_left(chaos, exp_dir, helpers)


def test_stop_after_the_scheduler_is_killed_keeps_what_finished_meanwhile(chaos: ChaosProject) -> None:
    exp_id, exp_dir, helpers = _killed_scheduler(chaos, sleep=2)
    wait_for(lambda: all(r["ended"] for rs in chaos.executions().values() for r in rs), 30,
             "the running trials to finish while no scheduler runs")
    chaos.cli("kill", f"{exp_id}-1", check=True)  # too late: it finished meanwhile, and its result stands
    chaos.cli("stop", exp_id, check=True)
    storage = chaos.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.STOPPED
    trials = storage.trials(exp_id)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2  # no new trial was started
    runs = chaos.executions()
    assert [t.final_value for t in trials] == [pytest.approx(runs[t.id][0]["params"]["x"]) for t in trials]
    _assert_nothing_left(chaos, exp_dir, helpers)


def test_kill_after_the_scheduler_is_killed_stops_the_trial(chaos: ChaosProject) -> None:
    exp_id, exp_dir, helpers = _killed_scheduler(chaos, sleep=60)
    target, other = sorted(chaos.executions())
    chaos.cli("kill", target, check=True)
    [killed] = chaos.executions()[target]
    wait_for(lambda: not alive(killed["pid"]), 20, "the killed trial's process to exit")
    assert alive(chaos.executions()[other][0]["pid"])  # the other trial runs on
    chaos.cli("stop", exp_id, check=True)  # the scheduler that stops it records how the killed one ended
    trial = chaos.storage().get_trial(target)
    assert trial.state is TrialState.USER_CANCELED and trial.ended_at is not None
    _assert_nothing_left(chaos, exp_dir, helpers)


def test_the_experiment_completes_across_a_broker_restart(chaos: ChaosProject) -> None:
    """The broker is away for longer than heartbeatTimeout: once it is back, the running trials get a fresh
    heartbeat window instead of being taken for lost (every trial runs once, as attempt 1)."""
    # the first two trials run through the outage; the rest are quick
    runs = [{"x": (i + 1) / 10, "sleep": 10 if i < 2 else 0.5} for i in range(TRIALS)]
    config = chaos.chaos_config(maxTrialNumber=TRIALS, trialConcurrency=2, heartbeatTimeout="5s",
                                tuner={"name": "BatchTuner"},
                                searchSpace={"combine_params": {"_type": "choice", "_value": runs}})
    submit = chaos.background("submit", str(config), "--quiet")
    exp_id = chaos.wait_experiment(30)
    wait_for(lambda: len(chaos.executions()) >= 2, 60, "two trials to start")
    exp_dir = chaos.exp_dir(exp_id)
    redis_pid = _pid(exp_dir / "broker" / "redis.pid")
    port = int((exp_dir / "broker" / "embedded").read_text())
    os.kill(redis_pid, signal.SIGTERM)  # a clean stop: Redis flushes its append-only file
    wait_for(lambda: not alive(redis_pid), 20, "Redis to stop")
    time.sleep(6)  # longer than heartbeatTimeout
    server = EmbeddedRedis(exp_dir / "broker", port=port)  # the same command line, port and data
    server.start()
    assert server.process is not None
    restarted = server.process
    chaos.procs.append(restarted)
    assert submit.wait(150) == 0, (chaos.root / "cli-0.log").read_text()[-3000:]
    _assert_all_ran_once_and_succeeded(chaos, exp_id)
    assert restarted.wait(20) == 0  # the scheduler stopped the restarted Redis at the end too
    _assert_nothing_left(chaos, exp_dir, [redis_pid])
