"""Suggestion time at large histories: ours beside Optuna's TPE and GP (not a test).

    python benchmarks/tuners_scale.py [--sizes 1000 10000 100000] [--tuners TPE,Anneal,Evolution,GP,...]
                                      [--limit 300]

Each (tuner, N) runs in a process of its own: the tuner is rebuilt from N observed trials of a random
history on hartmann6 (6 floats), as `hpoqueue resume` rebuilds it, then 5 suggestions are timed, each
followed by its observation (the median is printed). Whatever class the registry calls `TPE` (or GP, ...)
today is what is measured. A job that runs past --limit seconds (rebuild included) is stopped and shown as
such; a tuner that missed the limit at N is not tried at a larger N. Optuna's GP needs torch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import tuners as bench  # benchmarks/tuners.py: the same history, problem and timing as its small sizes

GOALS = {("TPE", 10000): 50.0, ("Anneal", 10000): 50.0, ("GP", 10000): 1000.0}


def _job(method: str, n_obs: int, out: multiprocessing.Queue) -> None:
    start = time.perf_counter()
    _, _, ms = bench._timing_job((method, n_obs))
    out.put((ms, time.perf_counter() - start))


def run(method: str, n_obs: int, limit: float) -> tuple[float | str, float]:
    """(ms per suggestion or why there is none, seconds the whole job took)."""
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
        return f"crashed (exit {proc.exitcode})", time.perf_counter() - start
    return out.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--tuners", default="TPE,Anneal,Evolution,GP,optuna-TPE,optuna-GP")
    parser.add_argument("--limit", type=float, default=300, help="seconds a (tuner, N) job may take")
    args = parser.parse_args()
    print(f"ms per suggestion on hartmann6 (median of {bench.TIMED}) at N observed trials; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    print("| tuner | N observed | ms per suggestion | goal | job s (rebuild + 5 suggestions) |")
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
