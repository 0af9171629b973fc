"""Per-trial overhead of hpoqueue against the plain floor and a peer: N trivial process trials, side by side.

    python benchmarks/overhead.py [--trials 200] [--concurrency 2 8] [--rounds 3] [--work-ms 0 ...]
                                  [--no-idle | --idle-only] [--idle-after 30]

The floor runs the same trial command through a thread pool and subprocess.run, nothing else. Optuna (when
installed: `pip install -e '.[bench]'`) runs it from its objective with n_jobs threads, in memory and with
SQLite storage. A bare Celery task (celery_floor.py: the command run, its loss pushed to Redis, nothing recorded)
shows what Celery and Redis alone cost a trial. hpoqueue runs it through `hpoqueue submit` (embedded Redis,
local Celery workers, SQLite) and with resident workers. `--work-ms` makes each trial spend that much CPU
after its start-up, as trials that do some work do.
Prints wall time, the ratio of throughput to the floor's, the scheduler's peak resident memory and that of
the helpers (Redis, workers), as medians over rounds that run every system back to back: on a shared VM
the floor itself moves by a third from one minute to the next. Ray Tune and NNI are not installed here:
shared/reference/peer-overhead.md has their figures on the same kind of box (NNI 3.0 about 0.5-1.3
trials/s, Ray Tune 0.7-16 trials/s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if str(Path(__file__).parent) not in sys.path:  # imported from elsewhere: its siblings celery_floor, scale
    sys.path.insert(0, str(Path(__file__).parent))

TRIAL = """import json, os, sys, time
p = json.loads(os.environ.get("HPOQUEUE_PARAMETERS") or sys.argv[1])
x, y = p["x"], p["y"]
end = time.process_time() + {work_ms} / 1000  # the trial's own work: CPU, as a training step's
while time.process_time() < end:
    pass
for i in range(3):
    print(f"loss={{(x - 1) ** 2 + (y + 2) ** 2 + 1.0 / (i + 1)}}")
"""


def trial_params(trials: int) -> list[dict[str, float]]:
    """The parameters the floor and the bare Celery task run, the same in every round."""
    import random

    rng = random.Random(0)
    return [{"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5)} for _ in range(trials)]


def floor(trials: int, concurrency: int, workdir: Path) -> float:
    params = trial_params(trials)
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


def hpoqueue_run(trials: int, concurrency: int, workdir: Path, broker: str | None = None) -> dict[str, float]:
    """`hpoqueue submit`: a local run (embedded Redis and workers started by it), or with `broker` the
    workers already running there (`hpoqueue workers start`), so only the scheduler starts."""
    home = Path(tempfile.mkdtemp(prefix="hpoq-bench-"))
    config = workdir / f"bench-{concurrency}.yml"
    config.write_text(json.dumps({
        "searchSpace": {"x": {"_type": "uniform", "_value": [-5, 5]}, "y": {"_type": "uniform", "_value": [-5, 5]}},
        "trialCommand": f"{sys.executable} trial.py", "trialConcurrency": concurrency, "maxTrialNumber": trials,
        "metricName": "loss", "tuner": {"name": "Random", "classArgs": {"seed": 0}}}))
    env = {**os.environ, "HPOQUEUE_HOME": str(home)}
    env.pop("HPOQUEUE_BROKER_URL", None)
    cpu_before = cpu_seconds(children_only=True)
    start_wall = time.time()  # compared with the trials' recorded start times
    start = time.perf_counter()
    extra = ["--broker", broker] if broker else []
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet", *extra],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
    cpu_ms = (cpu_seconds(children_only=True) - cpu_before) / trials * 1000  # not this process's monitoring
    if proc.returncode != 0:
        raise SystemExit(f"hpoqueue failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    from hpoqueue.storage import Storage

    storage = Storage(f"sqlite:///{home / 'hpoqueue.db'}")
    [exp] = storage.list_experiments()
    done = storage.trials(exp.id)
    first = min(t.started_at for t in done if t.started_at).timestamp()
    last = max(t.ended_at for t in done if t.ended_at).timestamp()
    ok = sum(t.state.value == "SUCCEEDED" for t in done)
    return {"wall": wall, "startup": first - start_wall, "steady": last - first, "ok": ok, "sched_rss": sched_peak,
            "helpers_rss": helpers_rss, "cpu_ms": cpu_ms}


def cpu_seconds(children_only: bool = False) -> float:
    """CPU used so far by the children this process waited for (with theirs: trials, workers, Redis) and,
    unless `children_only`, by this process (the floor's and Optuna's threads)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = used.ru_utime + used.ru_stime
    if not children_only:
        own = resource.getrusage(resource.RUSAGE_SELF)
        total += own.ru_utime + own.ru_stime
    return total


def redis_pid(home: Path) -> int:
    """The pid of the EmbeddedRedis started in `home`/redis."""
    return int((home / "redis" / "redis.pid").read_text())


class ResidentWorkers:
    """A Redis and `hpoqueue workers start --cpu C` running for the whole benchmark, as on a cluster: the
    `submit --broker` row pays the scheduler's start-up only."""

    def __init__(self, concurrency: int) -> None:
        from hpoqueue.broker.embedded import EmbeddedRedis

        self.home = Path(tempfile.mkdtemp(prefix="hpoq-bench-resident-"))
        self.redis = EmbeddedRedis(self.home / "redis")
        self.url = self.redis.start()
        self.env = {**os.environ, "HPOQUEUE_HOME": str(self.home), "HPOQUEUE_BROKER_URL": self.url}
        self.env.pop("HPOQUEUE_FAKE_GPUS", None)
        from hpoqueue.experiment.launch import LOCAL_CPU_THREADS

        # as many threads as a local run's worker has: with exactly `concurrency`, a trial's thread must
        # finish its bookkeeping before the next trial can start (about 35 ms a trial at concurrency 2)
        threads = max(concurrency, LOCAL_CPU_THREADS)
        subprocess.run([sys.executable, "-m", "hpoqueue", "workers", "start", "--cpu", str(threads)],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)
        time.sleep(2)  # the worker announces itself once ready; submit waits for nothing else

    def pids(self) -> list[int]:
        """The resident worker's and Redis's pids, whose CPU (the trials' included) the row adds."""
        return [int(p.read_text()) for p in (self.home / "workers").glob("*.pid")] + [redis_pid(self.home)]

    def close(self) -> None:
        subprocess.run([sys.executable, "-m", "hpoqueue", "workers", "stop"], env=self.env, check=False,
                       stdout=subprocess.DEVNULL)
        self.redis.stop()


class CeleryFloor:
    """A Redis and celery_floor.py's bare worker running for the whole benchmark: the floor of any design
    that sends each trial as a Celery task (no records, no claim, no logs)."""

    def __init__(self, concurrency: int) -> None:
        from hpoqueue.broker.embedded import EmbeddedRedis

        self.home = Path(tempfile.mkdtemp(prefix="hpoq-bench-celery-"))
        self.redis = EmbeddedRedis(self.home / "redis")
        self.url = self.redis.start()
        self.concurrency = concurrency
        self.worker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("celery_floor.py")), self.url,
                                        str(concurrency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)

    def pids(self) -> list[int]:
        return [self.worker.pid, redis_pid(self.home)]

    def run(self, trials: int, workdir: Path) -> float:
        from celery_floor import run

        params = trial_params(trials)
        start = time.perf_counter()
        run(self.url, params, self.concurrency, workdir)
        return time.perf_counter() - start

    def close(self) -> None:
        self.worker.terminate()
        self.worker.wait()
        self.redis.stop()


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and the children they waited for (a worker's trials)."""
    from scale import cpu_of

    return sum((cpu_of(pid) or 0.0) + (cpu_of(pid, children=True) or 0.0) for pid in pids)


def idle_memory(tuner: str, after: int = 0) -> dict[str, float]:
    """RSS and PSS (MiB) of a local run's scheduler, Redis and one worker while one trial sleeps: the first
    trial, or with `after` the one after `after` quick trials that report a loss (so a model-based tuner
    has fitted its model and suggested from it)."""
    workdir = Path(tempfile.mkdtemp(prefix="hpoq-bench-idle-"))
    home = workdir / "home"
    config = workdir / "idle.yml"
    marker = workdir / "sleeping"
    trial = (f"import json, os, pathlib, time; x = json.loads(os.environ['HPOQUEUE_PARAMETERS'])['x']; "
             f"print(f'loss={{(x - 0.3) ** 2}}', flush=True); last = os.environ['NNI_TRIAL_SEQ_ID'] == '{after + 1}'; "
             f"last and pathlib.Path({str(marker)!r}).touch(); time.sleep(8 if last else 0)")
    command = "sleep 8" if not after else f"{sys.executable} -c {json.dumps(trial)}"
    config.write_text(json.dumps({
        "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}, "trialCommand": command,
        "trialConcurrency": 1, "maxTrialNumber": after + 1, "metricName": "loss", "tuner": {"name": tuner}}))
    env = {**os.environ, "HPOQUEUE_HOME": str(home)}
    env.pop("HPOQUEUE_BROKER_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "hpoqueue", "submit", str(config), "--quiet"], cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while after and not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(6 if not after else 3)
    pids = {"scheduler": proc.pid}
    pids |= {f"worker {p.stem}": int(p.read_text()) for p in home.glob("*/workers/*.pid")}
    pids |= {f"redis {p.parent.parent.name}": int(p.read_text()) for p in home.glob("*/broker/redis.pid")
             if p.read_text().strip()}
    out = {f"{name} RSS": status_mib(pid, "VmRSS") for name, pid in pids.items()}
    out |= {f"{name} PSS": smaps_pss_mib(pid) for name, pid in pids.items()}
    proc.wait()
    return out


def smaps_pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def one_round(trials: int, concurrency: int, workdir: Path, resident: ResidentWorkers | None = None,
              celery: CeleryFloor | None = None) -> dict[str, dict[str, float]]:
    """Each system once, back to back, so that the ratios of one round share the machine's state."""
    runs: list[tuple[str, Callable[[], Any], list[int]]] = [
        ("floor (ThreadPool+subprocess)", lambda: floor(trials, concurrency, workdir), []),
        ("optuna (in memory)", lambda: optuna_run(trials, concurrency, workdir, None), []),
        ("optuna (SQLite)", lambda: optuna_run(trials, concurrency, workdir,
                                               f"sqlite:///{tempfile.mkdtemp(prefix='hpoq-optuna-')}/o.db"), []),
    ]
    if celery is not None:
        runs.append(("bare Celery task (resident worker)", lambda: celery.run(trials, workdir), celery.pids()))
    runs.append(("hpoqueue submit (embedded)", lambda: hpoqueue_run(trials, concurrency, workdir), []))
    if resident is not None:
        runs.append(("hpoqueue submit --broker (resident workers)",
                     lambda: hpoqueue_run(trials, concurrency, workdir, resident.url), resident.pids()))
    rows: dict[str, dict[str, float]] = {}
    for name, run, helpers in runs:
        before, helpers_before = cpu_seconds(), proc_cpu(helpers)
        result = run()
        if result is None:  # optuna not installed
            continue
        rows[name] = result if isinstance(result, dict) else {"wall": result}
        rows[name].setdefault("cpu_ms", (cpu_seconds() - before) / trials * 1000)
        rows[name]["cpu_ms"] += (proc_cpu(helpers) - helpers_before) / trials * 1000  # resident processes
    f = rows["floor (ThreadPool+subprocess)"]["wall"]
    for row in rows.values():
        row["ratio"] = f / row["wall"]
        if "steady" in row:
            row["steady_ratio"] = f / row["steady"]
    return rows


def cell(values: list[float], digits: int) -> str:
    """The median of a measure over the rounds, with its range when there were several."""
    if not values:
        return "-"
    middle = f"{statistics.median(values):.{digits}f}"
    return middle if len(values) == 1 else f"{middle} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def compile_hpoqueue() -> None:
    """Byte-compile hpoqueue's modules, as a regular `pip install` does. Under PYTHONDONTWRITEBYTECODE
    (set on some CI machines) an editable install otherwise compiles them from source in every process
    `submit` starts: about 0.4 s of the start-up, which no user with a normal install pays."""
    import compileall

    import hpoqueue

    compileall.compile_dir(Path(hpoqueue.__file__).parent, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every system, interleaved; the table shows medians (and ranges)")
    parser.add_argument("--work-ms", type=int, nargs="+", default=[0], metavar="MS",
                        help="CPU each trial spends after its start-up (default 0: start-up and 3 metric lines "
                             "only); several values make several tables")
    parser.add_argument("--no-resident", action="store_true", help="skip the resident-workers row")
    parser.add_argument("--no-celery", action="store_true", help="skip the bare Celery task row")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle memory of a local run")
    parser.add_argument("--idle-only", action="store_true", help="measure only the idle memory of a local run")
    parser.add_argument("--idle-after", type=int, default=30, metavar="N",
                        help="also measure it while trial N+1 sleeps, after N quick trials (0: skip)")
    args = parser.parse_args()
    compile_hpoqueue()
    if not args.idle_only:
        throughput_table(args)
    for after in [] if args.no_idle else sorted({0, args.idle_after}):
        for tuner in ["Random", "TPE", "GP", "Auto"]:
            idle = idle_memory(tuner, after)
            rss = sum(v for k, v in idle.items() if k.endswith("RSS"))
            pss = sum(v for k, v in idle.items() if k.endswith("PSS"))
            when = f"after {after} trials" if after else "while its first trial sleeps"
            print(f"idle memory of a local run ({tuner} tuner) {when}: {rss:.0f} MiB RSS, {pss:.0f} MiB "
                  "PSS (" + ", ".join(f"{k} {v:.0f}" for k, v in idle.items()) + ")")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


def throughput_table(args: argparse.Namespace) -> None:
    """The trials' tables: every system at every concurrency, medians over interleaved rounds, one table for
    each amount of work a trial does."""
    workdir = Path(tempfile.mkdtemp(prefix="hpoq-bench-trial-"))
    for work in args.work_ms:
        (workdir / "trial.py").write_text(TRIAL.format(work_ms=work))
        what = "trivial process trials (python start-up" + (f", {work} ms of CPU" if work else "")
        print(f"{args.trials} {what} + 3 metric lines), {os.cpu_count()} cores, {args.rounds} interleaved "
              "round(s); median (min-max) over the rounds")
        print("| system | conc | wall s | vs floor | start-up s (to first trial) | steady s (first start-last end) "
              "| vs floor (steady) | CPU ms per trial (all processes) | ok | scheduler peak RSS MiB "
              "| Redis+workers RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for c in args.concurrency:
            resident = None if args.no_resident else ResidentWorkers(c)
            celery = None if args.no_celery else CeleryFloor(c)
            try:
                rounds = [one_round(args.trials, c, workdir, resident, celery) for _ in range(args.rounds)]
            finally:
                for helper in (resident, celery):
                    if helper is not None:
                        helper.close()
            for name in rounds[0]:
                rows = [r[name] for r in rounds]

                def col(key: str, digits: int, rows: list[dict[str, float]] = rows) -> str:
                    return cell([row[key] for row in rows if key in row], digits)

                ok = col('ok', 0) if 'ok' in rows[0] else args.trials
                print(f"| {name} | {c} | {col('wall', 2)} | {col('ratio', 2)} | {col('startup', 2)} | "
                      f"{col('steady', 2)} | {col('steady_ratio', 2)} | {col('cpu_ms', 1)} | {ok} | "
                      f"{col('sched_rss', 0)} | {col('helpers_rss', 0)} |")


if __name__ == "__main__":
    main()
