"""Suggestion time at large histories: ours beside Optuna's TPE and GP (not a test).

    python benchmarks/tuners_scale.py [--sizes 1000 10000 100000] [--tuners TPE,Anneal,Evolution,GP,...]
                                      [--limit 300]

Each (tuner, N) runs in a process of its own: the tuner is rebuilt from N observed trials of a random
history on hartmann6 (6 floats), as `hpoqueue resume` rebuilds it (timed: the last column; Optuna: adding
the N trials to an in-memory study), then 5 suggestions are timed, each followed by its observation (the
median is printed). Whatever class the registry calls `TPE` (or GP, ...) today is what is measured. A job
that runs past --limit seconds (making the history included) is stopped and shown as such; a tuner that
missed the limit at N is not tried at a larger N. Optuna's GP needs torch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np
import tuners as bench  # benchmarks/tuners.py: the same problem, samplers and history seed as its small sizes
from problems import PROBLEMS

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import TUNERS

PROBLEM = PROBLEMS["hartmann6"]

GOALS = {("TPE", 10000): 50.0, ("Anneal", 10000): 50.0, ("GP", 10000): 1000.0}


def _history(n_obs: int) -> list[tuple[dict, float]]:
    space, rng = SearchSpace.from_dict(PROBLEM.space), np.random.default_rng(bench.HISTORY_SEED)
    return [(p, PROBLEM.fn(p)) for p in (space.sample(rng) for _ in range(n_obs))]


def _ours(name: str, history: list[tuple[dict, float]]) -> tuple[float, float]:
    """(seconds to rebuild from the history, as a resume does; median ms per suggestion after it)."""
    tuner = TUNERS.create(name=name, space=SearchSpace.from_dict(PROBLEM.space), optimize_mode="minimize", seed=0)
    start = time.perf_counter()
    tuner.rebuild([TrialResult(seq, p, TrialState.SUCCEEDED, v) for seq, (p, v) in enumerate(history, start=1)])
    rebuild = time.perf_counter() - start
    times = []
    for seq in range(len(history) + 1, len(history) + 1 + bench.TIMED):
        start = time.perf_counter()
        params = tuner.suggest(1)[0].params
        times.append(time.perf_counter() - start)
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, PROBLEM.fn(params)))
    return rebuild, 1000 * float(np.median(times))


def _optuna(name: str, history: list[tuple[dict, float]]) -> tuple[float, float]:
    import optuna

    study = optuna.create_study(sampler=bench._optuna_sampler(name, 0))
    dists = {k: optuna.distributions.FloatDistribution(*v["_value"]) for k, v in PROBLEM.space.items()}
    start = time.perf_counter()
    study.add_trials([optuna.trial.create_trial(params=p, distributions=dists, value=v) for p, v in history])
    rebuild = time.perf_counter() - start
    times = []
    for _ in range(bench.TIMED):
        start = time.perf_counter()
        trial = study.ask()
        bench._optuna_params(trial, PROBLEM.space)
        times.append(time.perf_counter() - start)
        study.tell(trial, PROBLEM.fn(trial.params))
    return rebuild, 1000 * float(np.median(times))


def _job(method: str, n_obs: int, out: multiprocessing.Queue) -> None:
    try:
        history = _history(n_obs)
        out.put((_optuna if method.startswith("optuna") else _ours)(method, history))
    except ImportError as exc:  # optuna's GPSampler needs torch
        out.put((float("nan"), f"unavailable ({exc})"))


def run(method: str, n_obs: int, limit: float) -> tuple[float | str, float]:
    """(ms per suggestion or why there is none, seconds the rebuild took)."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_job, args=(method, n_obs, out))
    start = time.perf_counter()
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return f"> {limit:g} s (stopped)", time.perf_counter() - start
    if proc.exitcode != 0:
        return f"crashed (exit {proc.exitcode})", float("nan")
    rebuild, ms = out.get()
    return ms, rebuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--tuners", default="TPE,Anneal,Evolution,GP,optuna-TPE,optuna-GP")
    parser.add_argument("--limit", type=float, default=300, help="seconds a (tuner, N) job may take")
    args = parser.parse_args()
    print(f"ms per suggestion on hartmann6 (median of {bench.TIMED}) at N observed trials; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    print("| tuner | N observed | ms per suggestion | goal | rebuild from N trials s (a resume's) |")
    print("|---|---|---|---|---|")
    for method in args.tuners.split(","):
        for n_obs in sorted(args.sizes):
            ms, took = run(method, n_obs, args.limit)
            goal = GOALS.get((method, n_obs))
            verdict = "-" if goal is None else (
                f"<= {goal:g} ms: " + ("met" if isinstance(ms, float) and ms <= goal else "missed"))
            shown = f"{ms:.1f}" if isinstance(ms, float) else ms
            print(f"| {method} | {n_obs} | {shown} | {verdict} | {took:.1f} |", flush=True)
            if not isinstance(ms, float):
                break  # a larger history would only take longer
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
