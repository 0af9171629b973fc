"""Per-trial overhead of hpoqueue against the plain floor and a peer: N trivial process trials, side by side.

    python benchmarks/overhead.py [--trials 200] [--concurrency 2 8]

The floor runs the same trial command through a thread pool and subprocess.run, nothing else. Optuna (when
installed: `pip install -e '.[bench]'`) runs it from its objective with n_jobs threads, in memory and with
SQLite storage. hpoqueue runs it through `hpoqueue submit` (embedded Redis, local Celery workers, SQLite).
Prints wall time, throughput, the ratio to the floor, the scheduler's peak resident memory and that of the
helpers (Redis, workers). Ray Tune and NNI are not installed here: shared/reference/peer-overhead.md has
their figures on the same kind of box (NNI 3.0 about 0.5-1.3 trials/s, Ray Tune 0.7-16 trials/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TRIAL = """import json, os, sys
p = json.loads(os.environ.get("HPOQUEUE_PARAMETERS") or sys.argv[1])
x, y = p["x"], p["y"]
for i in range(3):
    print(f"loss={(x - 1) ** 2 + (y + 2) ** 2 + 1.0 / (i + 1)}")
"""


def floor(trials: int, concurrency: int, workdir: Path) -> float:
    import random

    rng = random.Random(0)
    params = [{"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)} for _ in range(trials)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda p: subprocess.run([sys.executable, "trial.py", json.dumps(p)], cwd=workdir,
                                               capture_output=True, check=True), params))
    return time.perf_counter() - start


def optuna_run(trials: int, concurrency: int, workdir: Path, storage: str | None) -> float | None:
    """Optuna's ask/tell loop with n_jobs threads, each trial the same subprocess; None without optuna."""
    try:
        import optuna
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        p = {"x": trial.suggest_float("x", -5, 5), "y": trial.suggest_float("y", -5, 5)}
        out = subprocess.run([sys.executable, "trial.py", json.dumps(p)], cwd=workdir, capture_output=True,
                             check=True, text=True).stdout
        return float(out.strip().splitlines()[-1].split("=")[1])

    start = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=trials, n_jobs=concurrency)
    return time.perf_counter() - start


def status_mib(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status in MiB (VmRSS: now, VmHWM: peak); NaN once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def hpoqueue_run(trials: int, concurrency: int, workdir: Path) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="hpoq-bench-"))
    config = workdir / f"bench-{concurrency}.yml"
    config.write_text(json.dumps({
        "searchSpace": {"x": {"_type": "uniform", "_value": [-5, 5]}, "y": {"_type": "uniform", "_value": [-5, 5]}},
        "trialCommand": f"{sys.executable} trial.py", "trialConcurrency": concurrency, "maxTrialNumber": trials,
        "metricName": "loss", "tuner": {"name": "Random", "classArgs": {"seed": 0}}}))
    env = {**os.environ, "HPOQUEUE_HOME": str(home)}
    env.pop("HPOQUEUE_BROKER_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"], cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    helpers_rss = 0.0
    sched_peak = 0.0
    while proc.poll() is None:
        sched_peak = max(sched_peak, status_mib(proc.pid, "VmHWM"))
        pids = [int(p.read_text()) for p in home.glob("*/workers/*.pid")] + \
               [int(p.read_text()) for p in home.glob("*/broker/redis.pid") if p.read_text().strip()]
        rss = [status_mib(p, "VmRSS") for p in pids]
        helpers_rss = max(helpers_rss, sum(r for r in rss if r == r))  # NaN: gone meanwhile
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hpoqueue failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    from hpoqueue.storage import Storage

    storage = Storage(f"sqlite:///{home / 'hpoqueue.db'}")
    [exp] = storage.list_experiments()
    done = storage.trials(exp.id)
    first = min(t.started_at for t in done if t.started_at).timestamp()
    last = max(t.ended_at for t in done if t.ended_at).timestamp()
    ok = sum(t.state.value == "SUCCEEDED" for t in done)
    return {"wall": wall, "steady": last - first, "ok": ok, "sched_rss": sched_peak, "helpers_rss": helpers_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 8])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hpoq-bench-trial-"))
    (workdir / "trial.py").write_text(TRIAL)
    rows = []
    for c in args.concurrency:
        f = floor(args.trials, c, workdir)
        peers = {"optuna (in memory)": optuna_run(args.trials, c, workdir, None),
                 "optuna (SQLite)": optuna_run(args.trials, c, workdir,
                                               f"sqlite:///{tempfile.mkdtemp(prefix='hpoq-optuna-')}/o.db")}
        h = hpoqueue_run(args.trials, c, workdir)
        rows.append((c, f, peers, h))
    print(f"{args.trials} trivial process trials (python start-up + 3 metric lines), load avg "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("| system | conc | wall s | trials/s | vs floor | steady s (first start-last end) | steady trials/s "
          "| vs floor (steady) | ok | scheduler peak RSS MiB | Redis+workers RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c, f, peers, h in rows:
        print(f"| floor (ThreadPool+subprocess) | {c} | {f:.2f} | {args.trials / f:.1f} | 1.00 | - | - | - | "
              f"{args.trials} | - | - |")
        for name, wall in peers.items():
            if wall is not None:
                print(f"| {name} | {c} | {wall:.2f} | {args.trials / wall:.1f} | {f / wall:.2f} | - | - | - | "
                      f"{args.trials} | - | - |")
        print(f"| hpoqueue submit (embedded) | {c} | {h['wall']:.2f} | {args.trials / h['wall']:.1f} | "
              f"{f / h['wall']:.2f} | {h['steady']:.2f} | {args.trials / h['steady']:.1f} | {f / h['steady']:.2f} | "
              f"{h['ok']} | {h['sched_rss']:.0f} | {h['helpers_rss']:.0f} |")


if __name__ == "__main__":
    main()
