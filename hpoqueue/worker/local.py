"""Celery workers started on this machine as subprocesses: for an embedded experiment, or `workers start`."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hpoqueue.experiment.interrupts import interrupts_deferred
from hpoqueue.settings import ENV_BROKER


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: the queues it consumes and how many trials it runs at once."""

    name: str
    queues: tuple[str, ...]
    concurrency: int


def worker_command(spec: WorkerSpec, log_file: Path) -> list[str]:
    """The worker command line (hpoqueue.worker.main, which holds its other defaults) for `spec`."""
    return [sys.executable, "-m", "hpoqueue.worker.main", "-Q", ",".join(spec.queues),
            "-c", str(spec.concurrency), "-n", f"{spec.name}@%h", "--logfile", str(log_file)]


class LocalWorkers:
    """Start, find and stop local worker processes; pid files live in `state_dir` so a later command
    (resume, `workers stop`) finds the workers of an earlier one."""

    def __init__(self, state_dir: Path, broker_url: str) -> None:
        self.state_dir = Path(state_dir)
        self.broker_url = broker_url

    def pid_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def start(self, specs: list[WorkerSpec], extra_env: dict[str, str] | None = None) -> list[int]:
        """Start each worker not already running; returns the pids of all of them."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, ENV_BROKER: self.broker_url, **(extra_env or {})}
        pids = []
        for spec in specs:
            running = self.pid(spec.name)
            if running is not None:
                pids.append(running)
                continue
            log_file = self.state_dir / f"{spec.name}.log"
            with interrupts_deferred():  # its pid file must exist before a signal can end hpoqueue
                proc = subprocess.Popen(worker_command(spec, log_file), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=open(log_file, "ab"),  # noqa: SIM115
                                        start_new_session=True)
                self.pid_file(spec.name).write_text(str(proc.pid))
            pids.append(proc.pid)
        return pids

    def pid(self, name: str) -> int | None:
        """The pid of worker `name` if it is alive."""
        try:
            pid = int(self.pid_file(name).read_text())
        except (OSError, ValueError):
            return None
        try:
            return pid if _alive(pid) else None  # reaps a worker this process started that died (a zombie)
        except PermissionError:  # another user's process has the pid now
            return None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.state_dir.glob("*.pid"))

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM: running trials are stopped by their tasks), then SIGKILL."""
        pids = [p for p in (self.pid(n) for n in self.names()) if p is not None]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in pids:
            _wait_exit(pid, deadline)
            if _alive(pid):
                _signal(pid, signal.SIGKILL, group=True)
        for name in self.names():
            self.pid_file(name).unlink(missing_ok=True)


def _signal(pid: int, sig: int, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_exit(pid: int, deadline: float) -> None:
    """Return once `pid` has exited (woken by a pidfd the moment it does, on Linux) or at `deadline`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd: poll
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    try:
        select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
