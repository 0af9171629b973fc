"""GPU queues end to end with fake GPUs: pinning, per-GPU caps across workers, leases of killed workers,
every GPU for one trial, busy GPUs (useActiveGpu: false), gpuIndices, least-loaded routing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.broker.client import connect
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.worker.gpu_slots import GpuSlots, gpu_indices_env
from tests.e2e.conftest import Project, alive, max_overlap, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA = Path(__file__).parent.parent / "data" / "nvidia-smi"
LEASE_TTL = 4.0

#: Records, per attempt, CUDA_VISIBLE_DEVICES (null when unset), its start and end, its pid and the pids of
#: its ancestors (to find the worker that runs it); the start record is written before the trial sleeps.
GPU_TRIAL = '''
import json, os, time
import hpoqueue.trial as nni

nni.get_next_parameter()
start = time.time()
name = os.path.join(os.environ["ECHO_DIR"], nni.get_trial_id() + "." + os.path.basename(nni.get_output_dir()))
ancestors, pid = [], os.getpid()
while pid > 1:
    with open(f"/proc/{pid}/stat") as fh:
        pid = int(fh.read().rsplit(")", 1)[1].split()[1])
    ancestors.append(pid)
record = {"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "pid": os.getpid(),
          "ancestors": ancestors}
with open(name + ".tmp", "w") as fh:  # renamed into place, so a reader never sees half a record
    json.dump(record, fh)
os.replace(name + ".tmp", name + ".start")
time.sleep(float(os.environ.get("TRIAL_SLEEP", "0.5")))
nni.report_final_result(1.0)
record["end"] = time.time()
with open(name + ".tmp", "w") as fh:  # renamed into place, so a reader never sees half a record
    json.dump(record, fh)
os.replace(name + ".tmp", name + ".done")
'''


def gpu_project(root: Path, fake_gpus: str = "4", **env: str) -> Project:
    """A Project whose submit process and workers all see the same fake GPUs."""
    project = Project(root)
    (root / "gpu_trial.py").write_text(GPU_TRIAL)
    project.env.update({"HPOQUEUE_FAKE_GPUS": fake_gpus, "HPOQUEUE_GPU_LEASE_TTL": str(LEASE_TTL),
                        "TRIAL_SLEEP": "0.5", **env})
    return project


def gpu_config(project: Project, name: str = "config.yml", *, gpus: int | None = 1,
               service: dict[str, Any] | None = None, **fields: Any) -> Path:
    raw: dict[str, Any] = {"trialCommand": "python gpu_trial.py", "trialGpuNumber": gpus, **fields}
    if service is not None:
        raw["trainingService"] = {"platform": "local", **service}
    return project.config(name, **raw)


def attempts(project: Project, suffix: str = "done") -> dict[str, dict[str, Any]]:
    """What each attempt of each trial recorded, keyed "<trial>.attempt-<n>"."""
    return {p.name.rsplit(".", 1)[0]: json.loads(p.read_text()) for p in project.echo.glob(f"*.{suffix}")}


def finished_ok(project: Project, exp_id: str) -> list[Any]:
    storage = project.storage()
    assert storage.get_experiment(exp_id).state is ExperimentState.DONE
    trials = storage.trials(exp_id)
    assert trials and all(t.state is TrialState.SUCCEEDED for t in trials), [(t.id, t.state) for t in trials]
    return trials


def overlaps_per_gpu(records: list[dict[str, Any]]) -> dict[str, int]:
    per_gpu: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in records:
        for gpu in record["cuda"].split(","):
            per_gpu[gpu].append((record["start"], record["end"]))
    return {gpu: max_overlap(intervals) for gpu, intervals in per_gpu.items()}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def check_pinning(project: Project, exp_id: str) -> list[dict[str, Any]]:
    """Each trial saw exactly the GPUs recorded for it, and its queue names one of them."""
    trials = finished_ok(project, exp_id)
    records = attempts(project)
    for trial in trials:
        record = records[f"{trial.id}.attempt-{trial.attempt}"]
        assert trial.gpus, trial
        assert record["cuda"] == ",".join(map(str, trial.gpus)), (trial, record)
        assert trial.queue is not None and int(trial.queue.removeprefix("gpu")) in trial.gpus, trial
    return [records[f"{t.id}.attempt-{t.attempt}"] for t in trials]


def test_trials_are_pinned_capped_per_gpu_and_kept_to_gpu_indices(tmp_path: Path) -> None:
    project = gpu_project(tmp_path)
    config = gpu_config(project, maxTrialNumber=12, trialConcurrency=6,
                        service={"gpuIndices": [0, 1], "maxTrialNumberPerGpu": 2})
    project.cli("submit", str(config), "--quiet", check=True)
    records = check_pinning(project, project.only_experiment())
    assert {r["cuda"] for r in records} == {"0", "1"}  # gpuIndices: never 2 or 3, and both used
    overlaps = overlaps_per_gpu(records)
    assert max(overlaps.values()) <= 2, overlaps  # maxTrialNumberPerGpu
    assert max(overlaps.values()) == 2, overlaps  # and the GPUs were really shared


def test_concurrent_trials_go_to_the_least_loaded_gpus(tmp_path: Path) -> None:
    project = gpu_project(tmp_path, TRIAL_SLEEP="1.5")
    config = gpu_config(project, maxTrialNumber=4, trialConcurrency=4,
                        service={"gpuIndices": [0, 1, 2, 3], "maxTrialNumberPerGpu": 1})
    project.cli("submit", str(config), "--quiet", check=True)
    records = check_pinning(project, project.only_experiment())
    assert sorted(r["cuda"] for r in records) == ["0", "1", "2", "3"]


def test_a_trial_can_have_every_gpu_and_more_fails_at_submit(tmp_path: Path, redis_url: str) -> None:
    project = gpu_project(tmp_path)
    config = gpu_config(project, gpus=4, maxTrialNumber=2, trialConcurrency=2)
    project.cli("submit", str(config), "--quiet", check=True)
    records = check_pinning(project, project.only_experiment())
    assert [r["cuda"] for r in records] == ["0,1,2,3", "0,1,2,3"]
    assert max(overlaps_per_gpu(records).values()) == 1  # cap 1: the second waited for the first

    too_many = gpu_config(project, "five.yml", gpus=5, maxTrialNumber=1)
    run = project.cli("submit", str(too_many))
    assert run.code == 2
    line = one_line(run.stderr)
    assert "trialGpuNumber is 5" in line and "4 GPUs" in line
    # against a cluster's broker the boxes are unknown at submit, but gpuIndices still bounds the request
    listed = gpu_config(project, "listed.yml", gpus=3, maxTrialNumber=1, service={"gpuIndices": [0, 1]})
    run = project.cli("submit", str(listed), "--broker", redis_url)
    assert run.code == 2 and "trialGpuNumber is 3 but gpuIndices allows 2" in one_line(run.stderr)
    assert len(project.storage().list_experiments()) == 1  # nothing recorded for the refused ones


@pytest.mark.parametrize(("gpus", "seen"), [(0, ""), (None, "sentinel")])
def test_cpu_trials_see_no_gpu_and_unset_gpu_number_leaves_the_variable(tmp_path: Path, gpus: int | None,
                                                                       seen: str) -> None:
    project = gpu_project(tmp_path, CUDA_VISIBLE_DEVICES="sentinel")
    config = gpu_config(project, gpus=gpus, maxTrialNumber=2, trialConcurrency=2)
    project.cli("submit", str(config), "--quiet", check=True)
    trials = finished_ok(project, project.only_experiment())
    assert all(t.queue == "cpu" for t in trials)
    assert [r["cuda"] for r in attempts(project).values()] == [seen, seen]


def two_gpu_box(directory: Path, busy: list[int], pids: dict[int, int] | None = None) -> Path:
    """A recorded-style nvidia-smi capture of two H100s, the GPUs in `busy` running someone's pid 408+i
    (or the pid `pids` gives for the GPU)."""
    directory.mkdir(exist_ok=True)
    gpu0 = (DATA / "query_gpu_busy.csv").read_text().strip()
    gpu1 = (DATA / "query_gpu_idle.csv").read_text().strip().replace("0, GPU-660e2bd7", "1, GPU-770e2bd7", 1)
    assert gpu1.startswith("1, GPU-770e2bd7")
    (directory / "query_gpu.csv").write_text(f"{gpu0}\n{gpu1}\n")
    set_busy(directory, busy, pids)
    return directory


def set_busy(directory: Path, busy: list[int], pids: dict[int, int] | None = None) -> None:
    line = (DATA / "compute_apps_busy.csv").read_text().strip()
    assert line.split(",")[1].strip() == "408"
    uuids = {0: "GPU-660e2bd7", 1: "GPU-770e2bd7"}
    rows = [line.replace("GPU-660e2bd7", uuids[g]).replace(" 408,", f" {(pids or {}).get(g, 408 + g)},")
            for g in busy]
    (directory / "compute_apps.tmp").write_text("".join(f"{r}\n" for r in rows))
    (directory / "compute_apps.tmp").replace(directory / "compute_apps.csv")  # atomic for the readers


def test_busy_gpu_is_left_out_of_a_local_run(tmp_path: Path) -> None:
    box = two_gpu_box(tmp_path / "smi", busy=[0])
    project = gpu_project(tmp_path, fake_gpus=str(box))
    config = gpu_config(project, maxTrialNumber=3, trialConcurrency=2)  # useActiveGpu unset: false
    run = project.cli("submit", str(config), "--quiet", check=True)
    assert "not using gpu0 busy with pid 408 (not ours)" in run.stderr
    records = check_pinning(project, project.only_experiment())
    assert {r["cuda"] for r in records} == {"1"}


def test_trials_wait_on_busy_gpus_and_status_says_why(tmp_path: Path) -> None:
    box = two_gpu_box(tmp_path / "smi", busy=[0, 1])
    project = gpu_project(tmp_path, fake_gpus=str(box))
    config = gpu_config(project, maxTrialNumber=2, trialConcurrency=2)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        exp_id = wait_for(lambda: [e.id for e in project.storage().list_experiments()], 60, "the experiment")[0]
        status = wait_for(lambda: (s := project.cli("status", exp_id).stdout).count("(not ours)") == 2 and s,
                          60, "both trials waiting")
        assert "busy with pid 408 (not ours)" in status and "busy with pid 409 (not ours)" in status
        assert not attempts(project, "start")  # nothing ran on a busy GPU
        set_busy(box, [0])
        wait_for(lambda: attempts(project, "start"), 30, "the trial on the freed gpu1")
        freed_gpu0 = time.time()
        set_busy(box, [])
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert "trials wait until 1 GPU(s) are free" in stderr
    records = check_pinning(project, exp_id)
    assert sorted(r["cuda"] for r in records) == ["0", "1"]
    on_gpu0 = [r for r in records if r["cuda"] == "0"]
    assert on_gpu0[0]["start"] >= freed_gpu0  # never on gpu0 while pid 408 held it


def test_a_trial_of_another_local_run_makes_its_gpu_busy(tmp_path: Path) -> None:
    """Each local run counts GPU slots in its own Redis, so a trial of another one (another experiment, another
    broker) on the GPU is a foreign process here (useActiveGpu: false): the trial waits, the cap holds."""
    other = subprocess.Popen(["sleep", "120"], env={**os.environ, "HPOQUEUE_PARAMETER_FILE": "/dev/null",
                                                    "NNI_EXP_ID": "otherrun"})
    box = two_gpu_box(tmp_path / "smi", busy=[0], pids={0: other.pid})
    project = gpu_project(tmp_path, fake_gpus=str(box))
    config = gpu_config(project, maxTrialNumber=1, trialConcurrency=1, service={"gpuIndices": [0]})
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"],
                            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        exp_id = wait_for(lambda: [e.id for e in project.storage().list_experiments()], 60, "the experiment")[0]
        wait_for(lambda: f"gpu0 busy with pid {other.pid} (not ours)" in project.cli("status", exp_id).stdout,
                 60, "the trial to wait for gpu0")
        assert not attempts(project, "start")
        other.kill()
        set_busy(box, [])
        _, stderr = proc.communicate(timeout=60)
    finally:
        other.kill()
        other.wait()
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert [r["cuda"] for r in check_pinning(project, exp_id)] == ["0"]


@pytest.fixture
def gpu0_workers(redis_url: str, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two `celery -A hpoqueue worker -Q gpu0 -c 2` processes of one box against an external broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
    env.update({"HPOQUEUE_BROKER_URL": redis_url, "HPOQUEUE_FAKE_GPUS": "4",
                "HPOQUEUE_GPU_LEASE_TTL": str(LEASE_TTL), "TRIAL_SLEEP": "1.0",
                "ECHO_DIR": str(tmp_path / "echo")})
    workers = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "hpoqueue", "worker", "-Q", "gpu0", "-c",
                                 "2", "-P", "threads", "-n", f"w{i}@%h", "--without-mingle", "--without-gossip"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i in range(2)]
    yield workers
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_two_workers_share_the_cap_and_a_killed_workers_slot_frees(
        tmp_path: Path, redis_url: str, gpu0_workers: list[subprocess.Popen[bytes]]) -> None:
    project = gpu_project(tmp_path)
    config = gpu_config(project, maxTrialNumber=5, trialConcurrency=4, heartbeatTimeout="4s",
                        maxTrialRetries=1, service={"gpuIndices": [0], "maxTrialNumberPerGpu": 1})
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet",
                             "--broker", redis_url], cwd=project.root, env=project.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker_pids = {w.pid: w for w in gpu0_workers}
    try:
        first = wait_for(lambda: list(attempts(project, "start").values()), 90, "a first trial")[0]
        [owner] = [p for p in first["ancestors"] if p in worker_pids]
        worker_pids[owner].send_signal(signal.SIGKILL)
        worker_pids[owner].wait()
        killed_at = time.time()
        wait_for(lambda: not alive(first["pid"]), 5, "the killed worker's trial to die (PDEATHSIG)")
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    exp_id = project.only_experiment()
    check_pinning(project, exp_id)
    starts = attempts(project, "start")
    done = attempts(project)
    intervals = [(r["start"], done[k]["end"] if k in done else killed_at) for k, r in starts.items()]
    assert len(done) == 5 and max_overlap(intervals) == 1  # never two trials at once on gpu0
    survivor = next(p for p in worker_pids if p != owner)
    assert all(survivor in r["ancestors"] for r in done.values() if r["start"] > killed_at)
    next_start = min(r["start"] for r in starts.values() if r["start"] > killed_at)
    # the dead worker's slot freed itself after LEASE_TTL (4 s; measured 3.9 s to the next start with a core
    # busy), not after the default 30 s; expiry itself is checked without time in test_gpu_lease
    assert next_start - killed_at <= 3 * LEASE_TTL
    storage = project.storage()
    reasons = {e.data.get("why") for t in storage.trials(exp_id) for e in storage.events(t.id)
               if e.kind == "waiting"}
    assert "gpu0: all 1 slot(s) taken" in reasons  # the other worker's trials waited for the cap


def slots_for(redis_url: str, queue: str, seq: int, **fields: Any) -> GpuSlots:
    spec = TrialSpec(exp_id="e", trial_id=f"e-{seq}", seq=seq, attempt=1, params={}, command="true",
                     code_dir=".", work_dir=".", **fields)
    return GpuSlots(connect(redis_url), spec, queue, "w@box")


def test_extra_gpus_of_a_multi_gpu_trial_come_from_gpu_indices(redis_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "4")
    first = slots_for(redis_url, "gpu1", 1, gpu_number=2, extra_env=gpu_indices_env([1, 3]))
    assert first.try_acquire() == (True, "") and first.gpus == [1, 3]
    second = slots_for(redis_url, "gpu3", 2, gpu_number=2, extra_env=gpu_indices_env([1, 3]))
    assert second.try_acquire() == (False, "gpu3: all 1 slot(s) taken")
    first.release()
    assert second.try_acquire() == (True, "") and second.gpus == [1, 3]


def test_a_gpu_that_trials_counted_here_use_is_shared_up_to_the_cap(redis_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """useActiveGpu: false skips a GPU running processes that are not ours: a trial of an experiment that
    holds a lease on this broker is ours (its slot is counted), one whose slots another broker counts is not."""
    box = two_gpu_box(tmp_path / "smi", busy=[])
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", str(box))
    first = slots_for(redis_url, "gpu0", 1, gpu_number=1, gpu_cap=2, use_active_gpu=False)
    assert first.try_acquire() == (True, "")
    trial_env = {**os.environ, "HPOQUEUE_PARAMETER_FILE": "/dev/null"}
    ours, theirs = (subprocess.Popen(["sleep", "60"], env={**trial_env, "NNI_EXP_ID": exp}) for exp in ("e", "other"))
    try:
        set_busy(box, [0], {0: ours.pid})
        second = slots_for(redis_url, "gpu0", 2, gpu_number=1, gpu_cap=2, use_active_gpu=False)
        assert second.try_acquire() == (True, "")
        second.release()
        set_busy(box, [0], {0: theirs.pid})
        assert second.try_acquire() == (False, f"gpu0 busy with pid {theirs.pid} (not ours)")
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait()


def test_a_lease_that_expired_under_a_live_trial_is_taken_back(redis_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_FAKE_GPUS", "1")
    monkeypatch.setenv("HPOQUEUE_GPU_LEASE_TTL", "0.2")
    slots = slots_for(redis_url, "gpu0", 1, gpu_number=1, heartbeat_interval=0.1)
    assert slots.try_acquire() == (True, "")
    time.sleep(0.4)  # a stalled heartbeat: the lease is gone
    assert slots.leases.holders(0) == []
    pipe = connect(redis_url).pipeline(transaction=False)  # as a heartbeat sends it
    renewed = slots.renew_in(pipe)
    pipe.execute()
    assert renewed() and slots.leases.holders(0) == ["e-1-a1"]


def test_a_box_can_map_a_queue_to_another_gpu(tmp_path: Path) -> None:
    project = gpu_project(tmp_path, HPOQUEUE_GPU_MAP="gpu0=3")
    config = gpu_config(project, maxTrialNumber=2, trialConcurrency=1, service={"gpuIndices": [0]})
    project.cli("submit", str(config), "--quiet", check=True)
    trials = finished_ok(project, project.only_experiment())
    assert {t.queue for t in trials} == {"gpu0"} and all(t.gpus == [3] for t in trials)
    assert {r["cuda"] for r in attempts(project).values()} == {"3"}
