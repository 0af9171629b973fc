"""`hpoqueue workers start|status|stop` and the GPU check of `celery -A hpoqueue worker`, with fake GPUs and a
real broker: background workers run trials submitted with --broker, and stop leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpoqueue.states import ExperimentState, TrialState
from tests.e2e.conftest import Project

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.env["HPOQUEUE_FAKE_GPUS"] = "4"
    return project


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_celery_worker_on_a_gpu_the_box_lacks_refuses_to_start(project: Project, redis_url: str) -> None:
    env = {**project.env, "HPOQUEUE_BROKER_URL": redis_url}
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "hpoqueue", "worker", "-Q", "gpu7", "-P",
                           "threads"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpoqueue: error:")]
    assert "'gpu7'" in line and "GPUs 0, 1, 2, 3" in line


@pytest.mark.parametrize(("args", "named"), [(["--gpus", "7"], "--gpus names GPU 7"),
                                             (["--gpus", "0,x"], "--gpus must be"),
                                             (["--cap", "0"], "--cap is 0")])
def test_workers_start_refuses_bad_options_in_one_line(project: Project, redis_url: str, args: list[str],
                                                       named: str) -> None:
    run = project.cli("workers", "start", *args, "--broker", redis_url)
    assert run.code == 2
    assert named in one_line(run.stderr)
    assert not (project.home / "workers").exists() or not list((project.home / "workers").glob("*.pid"))


def test_workers_start_run_trials_and_stop(project: Project, redis_url: str) -> None:
    started = project.cli("workers", "start", "--gpus", "0,1", "--cap", "2", "--broker", redis_url, check=True)
    state_dir = project.home / "workers"
    pids = {name: int((state_dir / f"{name}.pid").read_text()) for name in ("gpu0", "gpu1")}
    try:
        assert all(str(pid) in started.stdout for pid in pids.values())
        status = project.cli("workers", "status", check=True).stdout.splitlines()
        for name, pid in pids.items():
            assert any(line.split()[:3] == [name, str(pid), "running"] for line in status), status
        config = project.config(trialGpuNumber=1, maxTrialNumber=3, trialConcurrency=2,
                                trainingService={"platform": "local", "gpuIndices": [0, 1],
                                                 "maxTrialNumberPerGpu": 2})
        project.cli("submit", str(config), "--quiet", "--broker", redis_url, check=True)
        exp_id = project.only_experiment()
        storage = project.storage()
        assert storage.get_experiment(exp_id).state is ExperimentState.DONE
        for trial in storage.trials(exp_id):
            assert trial.state is TrialState.SUCCEEDED
            assert trial.host is not None and trial.host.split("@")[0] in pids  # our background workers
    finally:
        stopped = project.cli("workers", "stop")
    assert stopped.code == 0 and "gpu0" in stopped.stdout and "gpu1" in stopped.stdout
    for pid in pids.values():
        assert not _alive(pid)
    assert "no workers" in project.cli("workers", "status", check=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
