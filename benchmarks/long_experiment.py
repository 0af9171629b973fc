"""The reading commands and resume on a long experiment: 100,000 finished trials (not a test).

    python benchmarks/long_experiment.py [--trials 100000] [--steps 20] [--backends sqlite postgresql]
                                         [--tuner TPE] [--redis redis://127.0.0.1:6379/12]

For each backend: a real `hpoqueue submit` records a 2-trial experiment (config, working directory,
schema); then the other trials are appended through the storage layer: `Storage.create_trials` for the
rows (1,000 at a time, as the scheduler does for free slots), and the scheduler's own statements as bulk
executemany for what the scheduler writes one by one (the trial's end, its `started`/`finished` events,
`--steps` intermediate results and one final result); writing them one by one would take an hour here.
Then each command runs as a user runs it (a fresh `hpoqueue` process): wall time and peak resident
memory (ru_maxrss). `resume` runs the scheduler on the finished experiment with `--broker` (no local
workers to start): it rebuilds its state and the tuner from the 100,000 trials, finds the budget spent
and ends; its peak RSS is the scheduler's memory at 100,000 trials. PostgreSQL: a database of its own
at 127.0.0.1:5432 (trust auth), dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, text, update

from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from hpoqueue.storage._models import EventRow, MetricRow, TrialRow

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_DB = "hpoq_i21_long"
BATCH = 1000
GOAL_S = 1.0

TRIAL = """import os
print("loss=1.0")
"""


def record_experiment(url: str, home: Path, tuner: str) -> str:
    """A real 2-trial run through `hpoqueue submit`: the experiment every later trial is appended to."""
    code = home / "code"  # beside the database and the exports, which are far over the 100 MiB shipped
    code.mkdir()
    (code / "trial.py").write_text(TRIAL)
    config = home / "long.yml"
    config.write_text(json.dumps({
        "experimentName": "long", "trialCommand": f"{sys.executable} trial.py", "trialCodeDirectory": str(code),
        "searchSpace": {"x": {"_type": "uniform", "_value": [-5, 5]}, "y": {"_type": "uniform", "_value": [-5, 5]},
                        "lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
                        "opt": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]}},
        "trialConcurrency": 2, "maxTrialNumber": 2, "metricName": "loss", "tuner": {"name": tuner}}))
    subprocess.run(hpoqueue(url, "submit", str(config), "--quiet"), check=True, env=env(home),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home)
    with Storage(url) as storage:
        [exp] = storage.list_experiments()
        return exp.id


def append_trials(url: str, exp_id: str, total: int, steps: int) -> float:
    """Append finished trials up to `total`, 1,000 per transaction; returns the seconds it took."""
    rng = random.Random(0)
    start = time.perf_counter()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Storage(url) as storage:
        engine = storage._engine  # the same engine and tables the scheduler writes through
        end_trial = (update(TrialRow.__table__).where(TrialRow.__table__.c.id == bindparam("_id"))
                     .values(state=bindparam("state"), host=bindparam("host"), pid=bindparam("pid"),
                             queue=bindparam("queue"), exit_code=bindparam("exit_code"),
                             final_value=bindparam("final_value"), started_at=bindparam("started_at"),
                             ended_at=bindparam("ended_at")))
        have = sum(storage.count_trials(exp_id).values())
        while have < total:
            n = min(BATCH, total - have)
            params = [{"x": rng.uniform(-5, 5), "y": rng.uniform(-5, 5), "lr": 10 ** rng.uniform(-5, -1),
                       "opt": rng.choice(["sgd", "adam", "rmsprop"])} for _ in range(n)]
            with storage.transaction():
                records = storage.create_trials(exp_id, params, ["cpu"] * n)
            ends, metrics, events = [], [], []
            for record in records:
                began = t0 + timedelta(seconds=record.seq * 3)
                value = (record.params["x"] - 1) ** 2 + (record.params["y"] + 2) ** 2
                ends.append({"_id": record.id, "state": TrialState.SUCCEEDED, "host": "box1", "pid": 1000,
                             "queue": "cpu", "exit_code": 0, "final_value": value, "started_at": began,
                             "ended_at": began + timedelta(seconds=2.5)})
                for step in range(steps):
                    metrics.append({"trial_id": record.id, "attempt": 1, "kind": "intermediate", "step": step,
                                    "value": value + 1.0 / (step + 1), "data": None, "created_at": began})
                metrics.append({"trial_id": record.id, "attempt": 1, "kind": "final", "step": steps,
                                "value": value, "data": None, "created_at": began})
                events.append({"trial_id": record.id, "attempt": 1, "kind": "started", "created_at": began,
                               "data": {"host": "box1", "pid": 1000, "gpus": None, "queue": "cpu",
                                        "log_dir": f"/tmp/{record.id}"}})
                events.append({"trial_id": record.id, "attempt": 1, "kind": "finished", "created_at": began,
                               "data": {"reason": "exited", "exit_code": 0, "signal": None, "stop_reason": None,
                                        "message": None, "metrics_rejected": 0}})
            with engine.begin() as conn:
                conn.execute(end_trial, ends)
                conn.execute(insert(MetricRow.__table__), metrics)
                conn.execute(insert(EventRow.__table__), events)
            have += n
        storage.update_experiment(exp_id, max_trial_number=total)
        storage.set_experiment_state(exp_id, ExperimentState.DONE)
    return time.perf_counter() - start


def hpoqueue(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "hpoqueue", "--storage", url, *args]


def env(home: Path) -> dict[str, str]:
    out = {**os.environ, "HPOQUEUE_HOME": str(home)}
    out.pop("HPOQUEUE_BROKER_URL", None)
    return out


def timed(argv: list[str], home: Path) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit code, last line of stderr) of one command, its stdout discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env(home), cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode().strip().splitlines() if proc.stderr else []
    return wall, usage.ru_maxrss / 1024, proc.returncode, err[-1] if err else ""


def db_size(url: str, home: Path) -> float:
    """The database's size in MiB."""
    if url.startswith("sqlite"):
        return sum(p.stat().st_size for p in home.glob("long.db*")) / 2**20
    with Storage(url) as storage, storage._engine.connect() as conn:
        return conn.execute(text("SELECT pg_database_size(current_database())")).scalar() / 2**20


def pg_admin(sql: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def bench(backend: str, args: argparse.Namespace) -> list[list[Any]]:
    home = Path(tempfile.mkdtemp(prefix="hpoq-long-"))
    if backend == "sqlite":
        url = f"sqlite:///{home / 'long.db'}"
    else:
        pg_admin(f"DROP DATABASE IF EXISTS {PG_DB}")
        pg_admin(f"CREATE DATABASE {PG_DB}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    try:
        exp_id = record_experiment(url, home, args.tuner)
        wall, rss, _, _ = timed(hpoqueue(url, "status", exp_id), home)
        print(f"| {backend} | status with 2 trials (start-up reference) | {wall:.2f} | - | {rss:.0f} |", flush=True)
        wrote = append_trials(url, exp_id, args.trials, args.steps)
        print(f"{backend}: {args.trials} trials x {args.steps} intermediate results written in {wrote:.0f} s; "
              f"database {db_size(url, home):.0f} MiB", flush=True)
        out = home / "export"
        commands = {
            "status": ["status", exp_id],
            "trials --top 20": ["trials", exp_id, "--top", "20"],
            "trials --sort value --top 20": ["trials", exp_id, "--sort", "value", "--top", "20"],
            "best": ["best", exp_id],
            "export --format csv": ["export", exp_id, "--format", "csv", "-o", f"{out}.csv"],
            "export --format json --intermediate": ["export", exp_id, "--format", "json", "--intermediate",
                                                    "-o", f"{out}.json"],
            "resume (--broker, nothing left to run)": ["resume", exp_id, "--quiet", "--broker", args.redis],
        }
        rows = []
        for name, argv in commands.items():
            wall, rss, code, err = timed(hpoqueue(url, *argv), home)
            goal = "-" if name.startswith(("export", "resume")) else (
                f"<= {GOAL_S:g} s: " + ("met" if wall <= GOAL_S else "missed"))
            note = "" if code in (0, 1) else f" (exit {code}: {err})"
            rows.append([backend, name, f"{wall:.2f}", goal, f"{rss:.0f}" + note])
            print(f"| {' | '.join(rows[-1])} |", flush=True)
        return rows
    finally:
        if backend == "postgresql":
            pg_admin(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        if args.keep:
            print(f"kept {url} (HPOQUEUE_HOME={home})")
        else:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20, help="intermediate results per trial")
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--tuner", default="TPE", help="the experiment's tuner, rebuilt by resume")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="broker for resume (no worker needed)")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file and working directory")
    args = parser.parse_args()
    print(f"{args.trials} finished trials, {args.steps} intermediate results each; tuner {args.tuner}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    print("| backend | command | wall s | goal | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for backend in args.backends:
        bench(backend, args)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
