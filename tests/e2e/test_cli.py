"""The CLI around a running experiment: detach, live update, stop, Ctrl-C, and the machine's own Redis."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpoqueue.broker.embedded import ping
from hpoqueue.states import ExperimentState, TrialState
from tests.e2e.conftest import Project, alive, processes_under, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOW_SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "sleep": {"_type": "choice", "_value": [1.0]},
              "steps": {"_type": "choice", "_value": [30]}}


def running_trials(project: Project, exp_id: str) -> list:  # type: ignore[type-arg]
    return project.storage().trials(exp_id, states=[TrialState.RUNNING])


def test_detached_experiment_can_be_updated_and_stopped(project: Project) -> None:
    config = project.config(maxTrialNumber=50, trialConcurrency=1, searchSpace=SLOW_SPACE)
    run = project.cli("submit", str(config), "--detach", check=True)
    exp_id = run.stdout.strip()
    wait_for(lambda: running_trials(project, exp_id), 60, "a trial to run")
    project.cli("update", exp_id, "--concurrency", "2", "--max-trials", "3", check=True)
    wait_for(lambda: len(running_trials(project, exp_id)) == 2, 60, "two running trials")
    exp = project.storage().get_experiment(exp_id)
    assert exp.concurrency == 2 and exp.max_trial_number == 3
    helpers = _helper_pids(Path(exp.work_dir))
    project.cli("stop", exp_id, check=True)
    wait_for(lambda: project.storage().get_experiment(exp_id).state is ExperimentState.STOPPED, 60,
             "the experiment to stop")
    trials = project.storage().trials(exp_id)
    assert len(trials) <= 3
    assert {t.state for t in trials} <= {TrialState.USER_CANCELED, TrialState.SUCCEEDED}
    assert any(t.state is TrialState.USER_CANCELED for t in trials)
    wait_for(lambda: not any(alive(pid) for pid in helpers), 30, "the local worker and Redis to exit")


@pytest.mark.parametrize("detach", [False, True], ids=["resume", "resume-detach"])
def test_resume_beside_a_running_scheduler_is_refused(project: Project, detach: bool) -> None:
    """A second scheduler would create every trial twice: `resume` of a running experiment is one line,
    exit 2, and the running one goes on untouched."""
    config = project.config(maxTrialNumber=2, trialConcurrency=2, searchSpace=SLOW_SPACE)
    exp_id = project.cli("submit", str(config), "--detach", check=True).stdout.strip()
    wait_for(lambda: len(running_trials(project, exp_id)) == 2, 60, "two running trials")
    run = project.cli("resume", exp_id, "--quiet", *(["--detach"] if detach else []))
    assert run.code == 2
    assert run.stderr.startswith(f"hpoqueue: error: experiment {exp_id} is already running (scheduler pid ")
    assert len(run.stderr.strip().splitlines()) == 1
    assert [t.state for t in project.storage().trials(exp_id)] == [TrialState.RUNNING] * 2
    assert "scheduler   running" in project.cli("status", exp_id, check=True).stdout
    project.cli("stop", exp_id, check=True)
    wait_for(lambda: project.storage().get_experiment(exp_id).state is ExperimentState.STOPPED, 60,
             "the experiment to stop")
    assert len(project.storage().trials(exp_id)) == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly(project: Project, signum: signal.Signals) -> None:
    """`kill` (SIGTERM) stops `submit` as Ctrl-C does: trials recorded USER_CANCELED, no process left."""
    config = project.config(maxTrialNumber=4, trialConcurrency=2, searchSpace=SLOW_SPACE)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        exp_id = wait_for(lambda: _first_experiment(project), 60, "the experiment to be recorded")
        wait_for(lambda: len(running_trials(project, exp_id)) == 2, 60, "two running trials")
        helpers = _helper_pids(Path(project.storage().get_experiment(exp_id).work_dir))
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 1  # stopped, not done
    finally:
        if proc.poll() is None:
            proc.kill()
    storage = project.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.STOPPED
    trials = storage.trials(exp_id)
    assert [t.state for t in trials] == [TrialState.USER_CANCELED] * 2
    for trial in trials:
        assert trial.pid is not None and not alive(trial.pid)
    assert not any(alive(pid) for pid in helpers)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_a_signal_while_submit_starts_leaves_nothing_running(project: Project, signum: signal.Signals) -> None:
    """SIGTERM or SIGHUP in the half second in which `submit` has started its Redis and worker but not yet
    recorded the experiment: both are stopped, and the message does not promise a resume."""
    config = project.config(maxTrialNumber=4, trialConcurrency=2, searchSpace=SLOW_SPACE)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        work_dir = wait_for(lambda: next(project.home.glob("*/workers/cpu.pid"), None), 60,
                            "the local worker to start", poll=0.005).parent.parent
        helpers = wait_for(lambda: _helper_pids(work_dir), 10, "Redis and the worker to start", poll=0.005)
        proc.send_signal(signum)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (1, 130)  # 1: the experiment was recorded first and stopped cleanly
    if code == 130:
        assert proc.stderr is not None and proc.stderr.read().decode().strip() == "hpoqueue: interrupted"
    # a SHUTDOWN or SIGTERM sent just before submit exited may take a moment to end them on a busy box
    wait_for(lambda: not any(alive(pid) for pid in helpers), 10, "Redis and the worker to exit")
    assert processes_under(project.home) == []


def test_sigterm_as_the_experiment_is_recorded_leaves_nothing_running(project: Project) -> None:
    """SIGTERM the moment `submit` says the experiment is created, while the scheduler takes over the Redis
    and worker started early: they are stopped all the same, and the experiment can be resumed."""
    config = project.config(maxTrialNumber=4, trialConcurrency=2, searchSpace=SLOW_SPACE)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "created" in line, line
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (1, 130), proc.stderr.read().decode()  # 1: the scheduler had taken over and stopped
    exp = project.storage().get_experiment(project.only_experiment())
    assert exp.state in (ExperimentState.RUNNING, ExperimentState.STOPPED)  # both resume
    assert processes_under(project.home) == []


def test_a_terminal_that_hangs_up_does_not_stop_the_experiment(project: Project) -> None:
    """SIGHUP (the window closed, the SSH connection dropped) while `submit` runs in a terminal: the
    experiment goes on to its end as if detached, and what `submit` printed goes on in scheduler.log."""
    config = project.config(maxTrialNumber=4, trialConcurrency=2,
                            searchSpace={**SLOW_SPACE, "sleep": {"_type": "choice", "_value": [0.1]},
                                         "steps": {"_type": "choice", "_value": [10]}})
    terminal, tty = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config)], cwd=project.root,
                            env=project.env, stdin=tty, stdout=tty, stderr=tty)
    os.close(tty)
    try:
        exp_id = wait_for(lambda: _first_experiment(project), 60, "the experiment to be recorded")
        wait_for(lambda: running_trials(project, exp_id), 60, "a trial to run")
        os.close(terminal)  # from now on a write to the terminal fails (EIO), as after a real hang-up
        proc.send_signal(signal.SIGHUP)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    exp = project.storage().get_experiment(exp_id)
    log = (Path(exp.work_dir) / "scheduler.log").read_text()
    assert code == 0, log
    assert exp.state is ExperimentState.DONE
    assert [t.state for t in project.storage().trials(exp_id)] == [TrialState.SUCCEEDED] * 4
    assert "hung up" in log and "best: " in log
    assert processes_under(project.home) == []


def test_machine_redis_runs_an_experiment(project: Project, machine_redis_url: str) -> None:
    config = project.config(maxTrialNumber=3)
    project.cli("submit", str(config), "--broker", machine_redis_url, "--local-workers", "--quiet", check=True)
    trials = project.storage().trials(project.only_experiment())
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 3
    assert ping(machine_redis_url)  # an external broker is left running


def _first_experiment(project: Project) -> str | None:
    if not (project.home / "hpoqueue.db").exists():
        return None
    exps = project.storage().list_experiments()
    return exps[0].id if exps else None


def _helper_pids(work_dir: Path) -> list[int]:
    """The pids of the run's local workers and embedded Redis once all have written their pid files, read
    while they run: stopping them removes the files."""
    files = [*work_dir.glob("workers/*.pid"), work_dir / "broker" / "redis.pid"]
    try:
        pids = [int(f.read_text()) for f in files]
    except (OSError, ValueError):  # not written yet
        return []
    assert all(alive(pid) for pid in pids)
    return pids


