"""Several boxes for real: trials run on simulated boxes that see neither the submit machine's files nor its
hostname (see conftest), from code shipped through the broker; logs come back live; assessors and `kill`
stop trials there; a dead box's trials are retried on the other; one scheduler per experiment across
machines."""

from __future__ import annotations

import os
import socket
import time

import pytest

from hpoqueue.errors import NotFoundError
from hpoqueue.states import TrialState
from tests.cluster.conftest import BOXES, Cluster
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(120)]


def _waiting(seconds: float) -> dict:
    """Trials that print `first`, wait `seconds`, print `second` (x keeps each trial's parameters new)."""
    return {"x": {"_type": "uniform", "_value": [0, 1]}, "wait": {"_type": "choice", "_value": [seconds]}}


def _detached(cluster: Cluster, config: str) -> str:
    run = cluster.cli("submit", config, "--broker", cluster.broker, "--detach")
    assert run.code == 0, run.stderr
    return run.stdout.strip()


def _state(cluster: Cluster, trial: str) -> TrialState | None:
    with cluster.storage() as storage:
        try:
            return storage.get_trial(trial).state
        except NotFoundError:  # not created yet
            return None


def _wait_running(cluster: Cluster, trial: str) -> None:
    wait_for(lambda: _state(cluster, trial) is TrialState.RUNNING, 30, f"{trial} to run")


def _wait_done(cluster: Cluster, exp_id: str) -> None:
    def done() -> bool:
        with cluster.storage() as storage:
            return storage.get_experiment(exp_id).state.value in ("DONE", "STOPPED")
    wait_for(done, 60, f"experiment {exp_id} to end")


def test_trials_run_on_both_boxes_from_shipped_code(cluster: Cluster) -> None:
    config = cluster.config("both", maxTrialNumber=8, searchSpace={
        "x": {"_type": "uniform", "_value": [0, 1]}, "step": {"_type": "choice", "_value": [0.5]}})
    run = cluster.cli("submit", str(config), "--broker", cluster.broker, "--quiet")
    assert run.code == 0, run.stderr
    [exp_id] = [e for e in cluster.experiments() if e in run.stderr]
    with cluster.storage() as storage:
        trials = storage.trials(exp_id)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 8
    assert {t.host for t in trials} == {f"gpu0@{b}" for b in BOXES}
    for trial in trials:
        out = cluster.cli("logs", trial.id)
        box = trial.host.split("@")[1]
        # the box ran the shipped copy (its own cache, never the hidden trialCodeDirectory)
        assert out.stdout.startswith(f"box={box} cwd=") and "helper=shipped" in out.stdout, out
        assert str(cluster.code) not in out.stdout
        assert f"/{box}-home/.hpoqueue/code/" in out.stdout
        # where the artefacts stay is said: on the box, not here
        assert f"ran on {box}" in out.stderr and "artefact" not in os.listdir(cluster.exps / exp_id / "trials"
                                                                            / str(trial.seq) / "attempt-1")
        assert "pid=" in cluster.cli("logs", trial.id, "--stderr").stdout
    assert not (cluster.exps / exp_id / "trials" / "1" / "attempt-1" / "artefact.txt").exists()
    table = cluster.cli("trials", exp_id)
    assert all(f"gpu0@{b}" in table.stdout for b in BOXES)
    assert "stay on the machine that ran them (boxa, boxb)" in table.stderr


def test_logs_follow_shows_a_remote_trial_live(cluster: Cluster) -> None:
    config = cluster.config("live", maxTrialNumber=1, trialConcurrency=1, searchSpace=_waiting(4))
    exp_id = _detached(cluster, str(config))
    _wait_running(cluster, f"{exp_id}-1")
    follow = cluster.spawn("logs", f"{exp_id}-1", "-f")
    assert follow.stdout is not None
    lines = []
    while not (lines and lines[-1].strip() == "first"):
        lines.append(follow.stdout.readline())
        assert lines[-1], lines
    assert _state(cluster, f"{exp_id}-1") is TrialState.RUNNING  # seen while the trial runs on its box
    rest, _ = follow.communicate(timeout=30)
    assert rest.strip() == "second" and follow.returncode == 0
    _wait_done(cluster, exp_id)


def test_an_assessor_stops_trials_on_the_boxes(cluster: Cluster) -> None:
    good = [[0.5, 0.4, 0.3, 0.2, 0.1]] * 2
    bad = [[5.0, 5.0, 5.0, 5.0, 5.0]] * 2
    config = cluster.config("assess", maxTrialNumber=4, trialConcurrency=2, tuner={"name": "BatchTuner"},
                            assessor={"name": "Medianstop", "classArgs": {"start_step": 2}},
                            searchSpace={"combo": {"_type": "choice", "_value": [
                                {"values": v, "step": 0.4} for v in good + bad]}})
    run = cluster.cli("submit", str(config), "--broker", cluster.broker, "--quiet")
    assert run.code == 0, run.stderr
    [exp_id] = [e for e in cluster.experiments() if e in run.stderr]
    with cluster.storage() as storage:
        trials = storage.trials(exp_id)
        assert [t.state for t in trials[:2]] == [TrialState.SUCCEEDED] * 2
        assert [t.state for t in trials[2:]] == [TrialState.EARLY_STOPPED] * 2
        for trial in trials[2:]:
            assert len(storage.metrics(trial.id, kind="intermediate")) < 5
            assert trial.host in {f"gpu0@{b}" for b in BOXES}
    assert not cluster.client.exists("assess")  # nothing waits for a worker that would never come


def test_kill_stops_a_trial_on_another_box(cluster: Cluster) -> None:
    config = cluster.config("kill", maxTrialNumber=1, trialConcurrency=1, searchSpace=_waiting(60))
    exp_id = _detached(cluster, str(config))
    trial = f"{exp_id}-1"
    _wait_running(cluster, trial)
    with cluster.storage() as storage:
        pid = storage.get_trial(trial).pid
    assert pid and alive(pid)
    assert cluster.cli("kill", trial).code == 0
    wait_for(lambda: not alive(pid), 15, "the trial's process on its box to end")
    _wait_done(cluster, exp_id)
    assert _state(cluster, trial) is TrialState.USER_CANCELED


def test_a_second_scheduler_on_another_machine_is_refused(cluster: Cluster) -> None:
    config = cluster.config("lock", maxTrialNumber=2, trialConcurrency=1, searchSpace=_waiting(3))
    exp_id = _detached(cluster, str(config))
    _wait_running(cluster, f"{exp_id}-1")
    other = cluster.cli("resume", exp_id, "--broker", cluster.broker, machine="othermachine")
    assert other.code == 2
    assert other.stderr.strip().splitlines() == [
        f"hpoqueue: error: experiment {exp_id} is already running on {socket.gethostname()} (scheduler pid "
        f"{(cluster.exps / exp_id / 'scheduler.pid').read_text().strip()}); follow it with `hpoqueue status "
        f"{exp_id}` or stop it with `hpoqueue stop {exp_id}`"]
    # the first scheduler dies: its lock frees itself within heartbeatTimeout (4 s) and the other goes on
    os.kill(int((cluster.exps / exp_id / "scheduler.pid").read_text()), 9)
    killed = time.monotonic()
    while (other := cluster.cli("resume", exp_id, "--broker", cluster.broker, "--quiet",
                                machine="othermachine")).code == 2:
        assert time.monotonic() - killed < 4 + 3, other.stderr
        time.sleep(0.5)
    assert other.code == 0, other.stderr
    with cluster.storage() as storage:
        assert [t.state for t in storage.trials(exp_id)] == [TrialState.SUCCEEDED] * 2


def test_a_dead_box_gets_its_trials_retried_on_the_other(cluster: Cluster) -> None:
    """Last: it kills boxa."""
    config = cluster.config("dead", maxTrialNumber=2, trialConcurrency=2, searchSpace=_waiting(6))
    exp_id = _detached(cluster, str(config))
    trials = [f"{exp_id}-1", f"{exp_id}-2"]
    for trial in trials:
        _wait_running(cluster, trial)
    with cluster.storage() as storage:
        hosts = {t: storage.get_trial(t).host for t in trials}
    victim = next((t for t, h in hosts.items() if h == "gpu0@boxa"), None)
    if victim is None:  # both went to boxb: kill that one instead
        cluster.kill_box("boxb")
        survivor = "boxa"
        victim = trials[0]
    else:
        cluster.kill_box("boxa")
        survivor = "boxb"
    _wait_done(cluster, exp_id)
    with cluster.storage() as storage:
        record = storage.get_trial(victim)
        assert record.state is TrialState.SUCCEEDED and record.attempt == 2
        assert record.host == f"gpu0@{survivor}"
        assert [e.kind for e in storage.events(victim)].count("lost") == 1
