"""Simulated boxes: each worker runs in its own mount and UTS namespace (`unshare`, as root), with its own
hostname and a tmpfs over the test's whole directory, so it sees neither the experiment directory, the
trial code, the database nor the submit machine's hostname; only the broker is shared. Workers start
exactly as the README says: `celery -A hpoqueue worker -Q gpu0 -c 2 -n gpu0@%h` with HPOQUEUE_BROKER_URL."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import BrokerClient
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.storage import Storage
from tests.e2e.conftest import Run, wait_for

#: prints where it runs, writes an artefact, reports `values` (or x) one per `step` s, then the last as final
CLUSTER_TRIAL = '''
import os, socket, sys, time
import hpoqueue.trial as nni

p = nni.get_next_parameter()
print(f"box={socket.gethostname()} cwd={os.getcwd()} helper={open('helper.txt').read().strip()}", flush=True)
print(f"pid={os.getpid()}", file=sys.stderr, flush=True)
with open(os.path.join(os.environ["NNI_OUTPUT_DIR"], "artefact.txt"), "w") as fh:
    fh.write("stays on the box")
values = p.get("values") or [p.get("x", 1.0)]
for v in values:
    nni.report_intermediate_result(v)
    time.sleep(p.get("step", 0.1))
if p.get("wait"):
    print("first", flush=True)
    time.sleep(p["wait"])
    print("second", flush=True)
nni.report_final_result(values[-1])
'''

BOXES = ("boxa", "boxb")


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "--uts", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Cluster:
    """A submit machine (this process's namespace) and simulated boxes sharing one real Redis."""

    def __init__(self, root: Path, broker: str) -> None:
        self.root = root
        self.broker = broker
        self.code = root / "code"
        self.exps = root / "exps"
        self.code.mkdir(parents=True)
        (self.code / "trial.py").write_text(CLUSTER_TRIAL)
        (self.code / "helper.txt").write_text("shipped")
        (self.code / "data").mkdir()
        (self.code / "data" / "big.bin").write_bytes(b"\0" * 1024)
        (self.code / ".nniignore").write_text("data/\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
        self.env.update({"HPOQUEUE_HOME": str(root / "home"),
                         "HPOQUEUE_STORAGE_URL": f"sqlite:///{root / 'hpoqueue.db'}",
                         "HPOQUEUE_RUN_DIR": str(root / "running")})
        self.boxes: dict[str, subprocess.Popen[bytes]] = {}
        self.background: list[subprocess.Popen[str]] = []
        self.client = redis.Redis.from_url(broker)

    # ---- boxes ----------------------------------------------------------------------------------------
    def start_box(self, name: str) -> None:
        """A worker on box `name`, started as the README says, in its own namespaces."""
        home = self.root / f"{name}-home"  # inside the box's tmpfs: only the box sees it
        bin_dir = os.path.dirname(sys.executable)
        script = (f"hostname {name} && mount -t tmpfs tmpfs {shlex.quote(str(self.root))} && "
                  f"mkdir -p {shlex.quote(str(home))} && "
                  "exec celery -A hpoqueue worker -Q gpu0 -c 2 -n gpu0@%h --loglevel WARNING")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
        env.update({"HPOQUEUE_BROKER_URL": self.broker, "HPOQUEUE_FAKE_GPUS": "4", "HOME": str(home),
                    "PATH": f"{bin_dir}:{env.get('PATH', os.defpath)}"})
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the box writes it for its whole life
        self.boxes[name] = subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c",
                                             script], cwd="/", env=env, stdout=log, stderr=log,
                                            start_new_session=True)
        log.close()

    def wait_boxes(self, *names: str) -> None:
        wanted = {f"gpu0@{n}" for n in names}
        wait_for(lambda: wanted <= {w.name for w in live_workers(BrokerClient(self.client))}, 60,
                 f"workers {sorted(wanted)} to announce themselves")

    def kill_box(self, name: str) -> None:
        """The box dies: SIGKILL to every process of it (its worker, the worker's children, its trials)."""
        proc = self.boxes.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def stop(self) -> None:
        """End what the tests started: detached schedulers (a failed test leaves them running), background
        CLI runs, then the boxes."""
        for pid_file in self.exps.glob("*/scheduler.pid"):
            try:
                pid = int(pid_file.read_text())
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"resume" in command and pid_file.parent.name.encode() in command:  # ours, not a reused pid
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        for proc in self.background:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for name in list(self.boxes):
            proc = self.boxes[name]
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill_box(name)
            self.boxes.pop(name, None)

    # ---- the submit machine -------------------------------------------------------------------------
    def config(self, name: str, **fields: Any) -> Path:
        raw: dict[str, Any] = {
            "trialCommand": "python trial.py", "trialCodeDirectory": str(self.code), "trialConcurrency": 4,
            "maxTrialNumber": 4, "trialGpuNumber": 1, "experimentWorkingDirectory": str(self.exps),
            "trainingService": {"platform": "local", "gpuIndices": [0], "maxTrialNumberPerGpu": 2,
                                "useActiveGpu": True},
            "tuner": {"name": "Random", "classArgs": {"seed": 1}},
            "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}, "heartbeatTimeout": "4s"}
        raw.update(fields)
        path = self.root / f"{name}.yml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def _argv(self, args: tuple[str, ...], machine: str | None) -> list[str]:
        argv = [sys.executable, "-m", "hpoqueue", *args]
        if machine is None:
            return argv
        # another machine sharing the broker and the database, with its own hostname and local disk
        script = (f"hostname {machine} && mount -t tmpfs tmpfs {shlex.quote(str(self.exps))} && "
                  f"exec {shlex.join(argv)}")
        return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script]

    def cli(self, *args: str, machine: str | None = None, timeout: float = 120) -> Run:
        proc = subprocess.run(self._argv(args, machine), cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def spawn(self, *args: str, machine: str | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self._argv(args, machine), cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.background.append(proc)
        return proc

    def storage(self) -> Storage:
        return Storage(self.env["HPOQUEUE_STORAGE_URL"])

    def experiments(self) -> list[str]:
        with self.storage() as storage:
            return [e.id for e in storage.list_experiments()]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two boxes (boxa, boxb), each serving gpu0 two trials at a time, on a Redis of their own."""
    if not unshare_works():
        pytest.skip("`unshare --mount --uts` is not available or not permitted here (needs root)")
    root = tmp_path_factory.mktemp("cluster")
    server = EmbeddedRedis(root / "redis")
    server.start()
    cluster = Cluster(root / "site", server.url)
    try:
        for name in BOXES:
            cluster.start_box(name)
        cluster.wait_boxes(*BOXES)
        yield cluster
    finally:
        cluster.stop()
        server.stop()
