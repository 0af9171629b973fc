"""Two simulated boxes × 4 fake GPUs: idle time of each GPU slot between trials, and what shipping the code
costs at a trial's start (first on a box, then cached) beside running it in place.

    sudo python benchmarks/cluster.py [--trials 32] [--code-mib 8]

Each box is a mount + UTS namespace (`unshare`, needs root) with its own hostname and a tmpfs over the
benchmark's directory, so it sees neither the experiment directory nor the shipped code's source; it runs
one worker per GPU (`celery -A hpoqueue worker -Q gpuN -c 1 -P threads -n gpuN@%h`, HPOQUEUE_FAKE_GPUS=4)
against one real Redis. The experiment (trials sleeping 1-3 s, 8 at a time, Random seed 0) runs twice on
the same boxes: first with the code on a path every box sees (`shipCode: false`), then shipped (the boxes'
code caches start empty). Code: trial.py plus `--code-mib` MiB of incompressible files.

Idle gap: for each GPU slot (box, GPU), the time between a trial's end and the start of the next trial on it.
Start latency: from the trial's creation (the scheduler dispatches it at once) to its process running, as
recorded (`started_at - created_at`); "first" are the trials of each box's first wave (one per GPU: the
first three wait on the fourth's unpacking), "later" the rest.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis
import yaml

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import BrokerClient
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.storage import Storage, TrialRecord
from hpoqueue.worker.code_bundle import pack

TRIAL = """import json, os, time
p = json.loads(os.environ["HPOQUEUE_PARAMETERS"])
time.sleep(p["sleep"])
print(f"loss={p['sleep']}")
"""
BOXES = ("boxa", "boxb")
GPUS = 4


def start_box(name: str, hidden: Path, broker: str, log: Path) -> subprocess.Popen[bytes]:
    home = hidden / f"{name}-home"
    workers = " & ".join(f"celery -A hpoqueue worker -Q gpu{g} -c 1 -P threads -n gpu{g}@%h --loglevel WARNING"
                         for g in range(GPUS))
    script = (f"hostname {name} && mount -t tmpfs tmpfs {shlex.quote(str(hidden))} && mkdir -p {home} && cd / && "
              f"{{ {workers} & wait; }}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
    env.update({"HPOQUEUE_BROKER_URL": broker, "HPOQUEUE_FAKE_GPUS": str(GPUS), "HOME": str(home),
                "PATH": f"{os.path.dirname(sys.executable)}:{env.get('PATH', os.defpath)}"})
    with open(log, "ab") as out:
        return subprocess.Popen(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
                                env=env, stdout=out, stderr=out, start_new_session=True)


def make_code(directory: Path, mib: int) -> None:
    directory.mkdir(parents=True)
    (directory / "trial.py").write_text(TRIAL)
    for i in range(mib * 4):  # incompressible, like weights or a vocabulary shipped with the code
        (directory / f"asset{i:03d}.bin").write_bytes(os.urandom(256 * 1024))


def run(root: Path, name: str, code: Path, broker: str, trials: int, ship: bool) -> tuple[float, list[TrialRecord]]:
    config = {
        "experimentName": name, "trialCommand": "python trial.py", "trialCodeDirectory": str(code),
        "trialConcurrency": 2 * GPUS, "maxTrialNumber": trials, "trialGpuNumber": 1, "metricName": "loss",
        "experimentWorkingDirectory": str(root / "hidden" / "exps"), "shipCode": ship,
        "trainingService": {"platform": "local", "gpuIndices": list(range(GPUS)), "maxTrialNumberPerGpu": 1,
                            "useActiveGpu": True},
        "tuner": {"name": "Random", "classArgs": {"seed": 0}},
        "searchSpace": {"sleep": {"_type": "uniform", "_value": [1, 3]}},
    }
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPOQUEUE_")}
    env.update({"HPOQUEUE_STORAGE_URL": f"sqlite:///{root / 'bench.db'}", "HPOQUEUE_HOME": str(root / "home")})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hpoqueue", "submit", str(path), "--broker", broker, "--quiet"],
                   env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    with Storage(env["HPOQUEUE_STORAGE_URL"]) as storage:
        exp = next(e for e in storage.list_experiments() if e.name == name)
        return wall, storage.trials(exp.id)


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def idle_gaps(trials: list[TrialRecord]) -> list[float]:
    slots: dict[str, list[TrialRecord]] = {}
    for t in trials:
        if t.started_at and t.ended_at and t.host:
            slots.setdefault(t.host, []).append(t)
    gaps = []
    for runs in slots.values():
        runs.sort(key=lambda t: _ts(t.started_at))  # type: ignore[arg-type]
        gaps += [_ts(b.started_at) - _ts(a.ended_at) for a, b in zip(runs, runs[1:], strict=False)]
    return gaps


def latencies(trials: list[TrialRecord]) -> tuple[list[float], list[float]]:
    """(first wave of each box, the rest): dispatch -> process running, in seconds."""
    first, later = [], []
    for box in BOXES:
        runs = sorted((t for t in trials if t.host and t.host.endswith("@" + box) and t.started_at),
                      key=lambda t: _ts(t.started_at))  # type: ignore[arg-type]
        for i, t in enumerate(runs):
            (first if i < GPUS else later).append(_ts(t.started_at) - _ts(t.created_at))  # type: ignore[arg-type]
    return first, later


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--code-mib", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hpoqueue-cluster-bench-"))
    (root / "hidden").mkdir()
    server = EmbeddedRedis(root / "redis")
    server.start()
    boxes = [start_box(b, root / "hidden", server.url, root / f"{b}.log") for b in BOXES]
    try:
        client = redis.Redis.from_url(server.url)
        wanted = {f"gpu{g}@{b}" for g in range(GPUS) for b in BOXES}
        deadline = time.monotonic() + 120
        while not wanted <= {w.name for w in live_workers(BrokerClient(client))}:
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not start; see {root}/box*.log")
            time.sleep(0.5)
        make_code(root / "shared-code", args.code_mib)
        make_code(root / "hidden" / "code", args.code_mib)
        packed = time.perf_counter()
        bundle = pack(root / "hidden" / "code")
        pack_s = time.perf_counter() - packed
        rows = []
        for name, code, ship in (("in place", root / "shared-code", False),
                                 ("shipped", root / "hidden" / "code", True)):
            wall, trials = run(root, name.replace(" ", "-"), code, server.url, args.trials, ship)
            assert all(t.state.value == "SUCCEEDED" for t in trials), [(t.id, t.exit_reason) for t in trials]
            gaps = idle_gaps(trials)
            first, later = latencies(trials)
            rows.append((name, len(trials), wall, pct(gaps, 0.5), pct(gaps, 0.99), statistics.median(first),
                         statistics.median(later)))
    finally:
        for box in boxes:
            os.killpg(box.pid, signal.SIGTERM)
        for box in boxes:
            try:
                box.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(box.pid, signal.SIGKILL)
        server.stop()
    print(f"2 boxes x {GPUS} fake GPUs, {args.trials} trials of 1-3 s, 8 at a time; code {bundle.files} files, "
          f"{bundle.size / 2**20:.1f} MiB, {len(bundle.data) / 2**20:.1f} MiB packed in {pack_s:.2f} s at submit")
    print(f"{'code':<10} {'trials':>6} {'wall s':>7} {'idle p50 s':>11} {'idle p99 s':>11} "
          f"{'start first s':>14} {'start later s':>14}")
    for name, n, wall, g50, g99, f50, l50 in rows:
        print(f"{name:<10} {n:>6} {wall:>7.1f} {g50:>11.3f} {g99:>11.3f} {f50:>14.3f} {l50:>14.3f}")
    (_, _, _, _, _, f_in, l_in), (_, _, _, _, _, f_sh, l_sh) = rows
    print(f"extra start latency of shipped code: first on a box {f_sh - f_in:+.3f} s, cached {l_sh - l_in:+.3f} s "
          "(medians)")


if __name__ == "__main__":
    main()
