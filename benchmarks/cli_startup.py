"""How fast the read commands start: `hpoqueue status|trials|best|list` on an experiment of 10 finished
trials, each a fresh process, with stdout a pipe (plain text) and, for `trials`, a pseudo-terminal (a rich
table), and which heavy modules each one loads.

    python benchmarks/cli_startup.py [--runs 15] [--source OTHER_CHECKOUT ...]

Each `--source` is another checkout of hpoqueue (e.g. `git archive BASE hpoqueue | tar -x -C /tmp/base`)
measured beside this one in interleaved rounds (so that load from other jobs falls on both alike); the
table gives median wall and CPU milliseconds per command and checkout.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("rich", "redis", "numpy", "celery", "sqlalchemy")
COMMANDS = {"--help": ["--help"], "list": ["list"], "status": ["status", "e"], "trials": ["trials", "e"],
            "best": ["best", "e"]}


def make_experiment(url: str) -> None:
    """Experiment `e`, DONE: 10 trials that ran, one FAILED."""
    from hpoqueue.states import ExperimentState, TrialState
    from hpoqueue.storage import Storage

    with Storage(url, create=True) as store:
        store.create_experiment("e", name="bench", config={}, work_dir="/tmp/none", optimize_mode="minimize",
                                concurrency=2, max_trial_number=10, max_duration=None)
        for i, trial in enumerate(store.create_trials("e", [{"lr": 10.0**-i, "layers": i} for i in range(10)])):
            store.transition(trial.id, TrialState.RUNNING, expected=[TrialState.WAITING],
                             started_at=datetime.now(timezone.utc))
            store.transition(trial.id, TrialState.FAILED if i == 3 else TrialState.SUCCEEDED,
                             expected=[TrialState.RUNNING], final_value=None if i == 3 else 1.0 / (i + 1))
        store.set_experiment_state("e", ExperimentState.DONE)


def run_once(source: Path, url: str, args: list[str], tty: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m hpoqueue ARGS` with `source` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(source), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "hpoqueue", "--storage", url, *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen(command, env=env, stdout=slave, stderr=subprocess.DEVNULL, cwd=source)
        os.close(slave)
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        os.close(master)
        proc.wait()
    else:
        proc = subprocess.run(command, env=env, capture_output=True, cwd=source)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {source} (exit {proc.returncode})")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def loaded(source: Path, url: str, args: list[str]) -> str:
    """Which of the HEAVY modules the command loads (stdout a pipe)."""
    code = ("import sys\nfrom hpoqueue.cli.commands import main\n"
            f"try:\n    main(['--storage', {url!r}, *{args!r}])\nexcept SystemExit:\n    pass\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or '-', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(source)},
                          capture_output=True, text=True, cwd=source)
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="another checkout to measure beside this one")
    args = parser.parse_args()
    sources = [ROOT, *(s.resolve() for s in args.source)]
    cases = [(name, argv, False) for name, argv in COMMANDS.items()] + [("trials (terminal)", COMMANDS["trials"],
                                                                         True)]
    samples: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'hpoqueue.db'}"
        make_experiment(url)
        for _ in range(args.runs):
            for source in sources:
                for name, argv, tty in cases:
                    samples.setdefault((source, name), []).append(run_once(source, url, argv, tty))
        modules = {(s, name): loaded(s, url, argv) for s in sources for name, argv, tty in cases if not tty}

    print(f"{os.uname().nodename}: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {args.runs} runs, median")
    print("| checkout | command | wall ms | CPU ms | heavy modules loaded (stdout a pipe) |")
    print("|---|---|---|---|---|")
    for source in sources:
        label = "this checkout" if source == ROOT else str(source)
        for name, _argv, _tty in cases:
            walls, cpus = zip(*samples[(source, name)], strict=True)
            print(f"| {label} | `{name}` | {1000 * statistics.median(walls):.0f} | "
                  f"{1000 * statistics.median(cpus):.0f} | {modules.get((source, name), 'not measured')} |")


if __name__ == "__main__":
    main()
