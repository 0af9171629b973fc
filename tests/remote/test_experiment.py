"""`platform: remote` experiments against real sshd boxes on loopback: the workers start on each machine of
machineList, reach the embedded broker through the SSH connection, survive a dropped connection, and are
gone at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from tests.e2e.conftest import wait_for
from tests.remote.conftest import Box, cli_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRIAL = '''
import json, os, socket, time
import hpoqueue.trial as nni

params = nni.get_next_parameter()
record = {"host": socket.gethostname(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "uid": os.getuid(),
          "trial": nni.get_trial_id()}
os.makedirs(ECHO, exist_ok=True)
open(os.path.join(ECHO, record["trial"] + ".start"), "w").write(record["host"])
time.sleep(float(os.environ.get("TRIAL_SLEEP", params["sleep"])))
with open(os.path.join(ECHO, record["trial"] + ".json"), "w") as fh:
    json.dump(record, fh)
print("hello from", record["host"])
nni.report_final_result(params["x"])
'''


class RemoteProject:
    """An experiment folder whose trials run on the boxes, driven through the CLI."""

    def __init__(self, root: Path, boxes: tuple[Box, Box], key: Path, known_hosts: Path) -> None:
        self.root = root
        self.home = root / "home"
        # trials run in the copy of the code shipped to each box; the loopback boxes still see this folder, so
        # they write what the test checks here, at its absolute path
        (root / "trial.py").write_text(f"ECHO = {str(root / 'echo')!r}\n" + TRIAL)
        self.boxes = boxes
        self.key = key
        self.env = cli_env(HPOQUEUE_HOME=str(self.home), HPOQUEUE_KNOWN_HOSTS=str(known_hosts))
        self.submitted: list[subprocess.Popen[str]] = []

    def config(self, **fields: Any) -> Path:
        raw: dict[str, Any] = {
            "trialCommand": "python3 trial.py", "trialConcurrency": 3, "maxTrialNumber": 6, "trialGpuNumber": 1,
            "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}, "sleep": {"_type": "choice",
                                                                                 "_value": [1.5]}},
            "trainingService": {"platform": "remote",
                                "machineList": [b.machine(self.key) for b in self.boxes]},
            **fields}
        path = self.root / "config.yml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def submit(self, config: Path, *options: str) -> subprocess.Popen[str]:
        # not --quiet, which would hide the notes (a reconnection) the tests read
        self.submitted.append(subprocess.Popen(
            [sys.executable, "-m", "hpoqueue", "submit", str(config), *options], cwd=self.root,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return self.submitted[-1]

    def kill_left(self) -> None:
        """After the test: SIGKILL a submit still running (the test failed) and the embedded Redis it left
        (the boxes' fixture then kills their workers and trials)."""
        for proc in self.submitted:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        for pid_file in self.home.glob("*/broker/redis.pid"):
            pid = int(pid_file.read_text())
            try:
                if b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hpoqueue", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def storage(self) -> Storage:
        return Storage(f"sqlite:///{self.home / 'hpoqueue.db'}")

    def experiment(self) -> str:
        return wait_for(lambda: [e.id for e in self.storage().list_experiments()], 30, "the experiment")[0]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in (self.root / "echo").glob("*.json")]

    def nothing_left(self, exp: str) -> None:
        """No worker of the experiment and no trial runs on either box."""
        for box in self.boxes:
            assert box.worker_pids(exp) == [], box.name
            running = box.root / "running"
            assert not running.exists() or not list(running.iterdir()), box.name


def worker_broker(pid: int) -> SplitResult:
    """The broker URL in a worker's environment."""
    env = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in item)
    return urlsplit(env[b"HPOQUEUE_BROKER_URL"].decode())


@pytest.fixture
def project(tmp_path: Path, boxes: tuple[Box, Box], user_key: Path, known_hosts: Path) -> Iterator[RemoteProject]:
    project = RemoteProject(tmp_path, boxes, user_key, known_hosts)
    yield project
    project.kill_left()


def test_a_remote_experiment_runs_trials_on_both_machines(project: RemoteProject) -> None:
    proc = project.submit(project.config())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    exp = project.experiment()
    storage = project.storage()
    trials = storage.trials(exp)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 6, err
    records = project.records()
    assert {r["host"] for r in records} == {"box1", "box2"}  # trials ran on both machines
    assert all(r["uid"] == os.getuid() for r in records)  # as the SSH user
    assert {r["cuda"] for r in records if r["host"] == "box2"} == {"0"}  # box2 has one GPU: pinned to it
    assert {r["cuda"] for r in records} <= {"0", "1"}
    assert {t.host.split("@")[1] for t in trials} == {"box1", "box2"}
    work_dir = Path(storage.get_experiment(exp).work_dir)
    forwarded = json.loads((work_dir / "remote-forwards.json").read_text())
    broker_port = int((work_dir / "broker" / "embedded").read_text())
    assert len(forwarded) == 2 and broker_port not in forwarded.values()  # each box had its own tunnel
    logs = project.cli("logs", trials[0].id)
    assert logs.returncode == 0 and "hello from box" in logs.stdout
    project.nothing_left(exp)


def test_a_dropped_connection_is_made_again_and_the_experiment_finishes(project: RemoteProject) -> None:
    box1 = project.boxes[0]
    proc = project.submit(project.config(heartbeatTimeout="8s", trialConcurrency=2, maxTrialNumber=4,
                                         searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                                                      "sleep": {"_type": "choice", "_value": [3]}}))
    wait_for(lambda: any(p.read_text() == "box1" for p in (project.root / "echo").glob("*.start"))
             if (project.root / "echo").exists() else False, 60, "a trial running on box1")
    exp = project.experiment()
    work_dir = Path(project.storage().get_experiment(exp).work_dir)
    forwarded = json.loads((work_dir / "remote-forwards.json").read_text())
    for box in project.boxes:  # the workers reach the broker at their box's end of the tunnel
        ports = {worker_broker(pid).port for pid in box.worker_pids(exp)}
        assert ports == {forwarded[f"{box.machine(project.key)['user']}@127.0.0.1:{box.port}"]}
        assert all(worker_broker(pid).password for pid in box.worker_pids(exp))
    # the experiment holds an SSH connection to box1 (made again within seconds if it dropped under load)
    # (or the experiment died: then say how, with its stderr)
    sessions = wait_for(lambda: box1.sessions() or proc.poll() is not None, 20,
                        "the experiment's SSH connection to box1")
    assert proc.poll() is None, f"the experiment exited with {proc.returncode}: {proc.communicate()[1]}"
    for pid in sessions:  # the per-connection sshd: the connection drops, the workers on the box live on
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"reconnected to {box1.machine(project.key)['user']}@127.0.0.1:{box1.port}" in err
    trials = project.storage().trials(exp)
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 4, err
    project.nothing_left(exp)


def crash(project: RemoteProject, sleep: float) -> str:
    """Submit, SIGKILL the scheduler while trials run, and return the experiment id."""
    proc = project.submit(project.config(trialConcurrency=2, maxTrialNumber=2, heartbeatTimeout="8s",
                                         searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                                                      "sleep": {"_type": "choice", "_value": [sleep]}}))
    exp = project.experiment()
    wait_for(lambda: list((project.root / "echo").glob("*.start")) if (project.root / "echo").exists() else [],
             60, "a trial running")
    proc.send_signal(signal.SIGKILL)  # the scheduler dies; its workers on the boxes do not
    proc.communicate()
    assert any(box.worker_pids(exp) for box in project.boxes)
    return exp


def test_after_a_crash_stop_ends_the_workers_on_the_machines(project: RemoteProject) -> None:
    exp = crash(project, sleep=60)
    stop = project.cli("stop", exp)
    assert stop.returncode == 0, stop.stderr
    assert project.storage().get_experiment(exp).state is not ExperimentState.RUNNING
    project.nothing_left(exp)


def test_after_a_crash_resume_finds_the_workers_again_and_finishes(project: RemoteProject) -> None:
    exp = crash(project, sleep=8)  # the trials end after the tunnel is back
    resume = project.cli("resume", exp, "--quiet")
    assert resume.returncode == 0, resume.stderr
    trials = project.storage().trials(exp)
    # the workers of the first run reach the broker again (the same port on their box): a trial that ended while
    # no tunnel ran may be retried as lost, but none stays RUNNING, which a new port would leave them
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 2, resume.stderr
    project.nothing_left(exp)


def test_a_machine_that_refuses_is_one_line_and_nothing_is_recorded(project: RemoteProject, tmp_path: Path) -> None:
    project.env["HPOQUEUE_KNOWN_HOSTS"] = str(tmp_path / "empty_known_hosts")
    proc = project.submit(project.config())
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and "unknown host key" in err and "Traceback" not in err
    assert not (project.home / "hpoqueue.db").exists() or project.storage().list_experiments() == []


def test_ctrl_c_stops_the_workers_of_a_cpu_experiment_on_every_machine(project: RemoteProject) -> None:
    proc = project.submit(project.config(trialGpuNumber=0, trialConcurrency=2, maxTrialNumber=2,
                                         searchSpace={"x": {"_type": "uniform", "_value": [0, 1]},
                                                      "sleep": {"_type": "choice", "_value": [60]}}))
    exp = project.experiment()
    wait_for(lambda: list((project.root / "echo").glob("*.start")) if (project.root / "echo").exists() else [],
             60, "a trial running")
    assert all(box.worker_pids(exp) for box in project.boxes)  # one `cpu` worker on each machine
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    assert project.storage().get_experiment(exp).state is not ExperimentState.RUNNING
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in project.storage().trials(exp))
    project.nothing_left(exp)


def test_with_a_broker_of_its_own_the_boxes_use_it_directly(project: RemoteProject, redis_url: str) -> None:
    proc = project.submit(project.config(trialConcurrency=2, maxTrialNumber=3), "--broker", redis_url)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    exp = project.experiment()
    assert [t.state for t in project.storage().trials(exp)] == [TrialState.SUCCEEDED] * 3
    work_dir = Path(project.storage().get_experiment(exp).work_dir)
    assert not (work_dir / "remote-forwards.json").exists()  # no tunnel: the broker is reachable as it is
    project.nothing_left(exp)
