"""Tuner quality and speed, ours beside Optuna, hyperopt and plain random search (not a test).

Run: ``python benchmarks/tuners.py`` (100 evaluations x 10 seeds on every problem of
benchmarks/problems.py); shrink with ``--evals --seeds --problems --tuners``; ``--timing-only`` /
``--no-timing``. Prints median [IQR] regret at 25/50/100 evaluations (regret = best value so far minus
the optimum, or minus the best value any method reached in this run when the optimum is unknown),
then milliseconds per suggestion at N observed trials. Two worker processes.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from multiprocessing import Pool

import numpy as np
from problems import PROBLEMS, Problem

from hpoqueue.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import TUNERS

OURS = ["Random", "TPE", "Anneal", "Evolution", "GP"]
PEERS = ["optuna-TPE", "optuna-GP", "hyperopt-TPE", "plain-random"]
TIMED = 5  #: suggestions timed at each history size (the median is printed)
#: seeds the random history the timed tuners start from; not 0, the tuners' own seed, or a random tuner
#: would draw that very history again and spend its time rejecting repeats
HISTORY_SEED = 12345


def _run_ours(name: str, problem: Problem, evals: int, seed: int) -> list[float]:
    tuner = TUNERS.create(name=name, space=SearchSpace.from_dict(problem.space),
                          optimize_mode="minimize", seed=seed)
    values = []
    for seq in range(1, evals + 1):
        params = tuner.suggest(1)[0].params
        values.append(problem.fn(params))
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, values[-1]))
    return values


def _optuna_params(trial, space: dict) -> dict:  # noqa: ANN001 - optuna.Trial, imported lazily
    out = {}
    for name, spec in space.items():
        kind, v = spec["_type"], spec["_value"]
        if kind == "choice":
            out[name] = trial.suggest_categorical(name, v)
        elif kind == "randint":
            out[name] = trial.suggest_int(name, v[0], v[1] - 1)
        else:
            out[name] = trial.suggest_float(name, v[0], v[1], log=kind == "loguniform")
    return out


def _optuna_sampler(name: str, seed: int):  # noqa: ANN202
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    return (optuna.samplers.TPESampler(seed=seed) if name == "optuna-TPE"
            else optuna.samplers.GPSampler(seed=seed))


def _run_optuna(name: str, problem: Problem, evals: int, seed: int) -> list[float]:
    import optuna

    if name == "optuna-GP":  # two benchmark processes on two cores: one torch thread each
        import torch

        torch.set_num_threads(1)
    study = optuna.create_study(sampler=_optuna_sampler(name, seed))
    values: list[float] = []

    def objective(trial) -> float:  # noqa: ANN001
        values.append(problem.fn(_optuna_params(trial, problem.space)))
        return values[-1]

    study.optimize(objective, n_trials=evals)
    return values


def _hyperopt_space(space: dict) -> dict:
    from hyperopt import hp

    out = {}
    for name, spec in space.items():
        kind, v = spec["_type"], spec["_value"]
        out[name] = (hp.choice(name, v) if kind == "choice" else hp.randint(name, v[0], v[1])
                     if kind == "randint" else hp.loguniform(name, math.log(v[0]), math.log(v[1]))
                     if kind == "loguniform" else hp.uniform(name, v[0], v[1]))
    return out


def _run_hyperopt(name: str, problem: Problem, evals: int, seed: int) -> list[float]:
    from hyperopt import Trials, fmin, tpe

    values: list[float] = []

    def objective(p: dict) -> float:
        p = {k: int(v) if problem.space[k]["_type"] == "randint" else v for k, v in p.items()}
        values.append(problem.fn(p))
        return values[-1]

    fmin(objective, _hyperopt_space(problem.space), algo=tpe.suggest, max_evals=evals, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)
    return values


def _run_plain_random(name: str, problem: Problem, evals: int, seed: int) -> list[float]:
    space, rng = SearchSpace.from_dict(problem.space), np.random.default_rng(seed)
    return [problem.fn(space.sample(rng)) for _ in range(evals)]


RUNNERS: dict[str, Callable[[str, Problem, int, int], list[float]]] = {
    **dict.fromkeys(OURS, _run_ours), "optuna-TPE": _run_optuna, "optuna-GP": _run_optuna,
    "hyperopt-TPE": _run_hyperopt, "plain-random": _run_plain_random}


def _job(args: tuple[str, str, int, int]) -> tuple[str, str, int, list[float] | str]:
    method, problem, evals, seed = args
    try:
        return method, problem, seed, RUNNERS[method](method, PROBLEMS[problem], evals, seed)
    except ImportError as exc:  # optuna's GPSampler needs torch
        return method, problem, seed, f"unavailable: {exc}"


def quality(methods: list[str], problems: list[str], evals: int, seeds: int) -> None:
    jobs = [(m, p, evals, s) for p in problems for m in methods for s in range(seeds)]
    with Pool(2) as pool:
        results = pool.map(_job, jobs, chunksize=1)
    checkpoints = [c for c in (25, 50, 100) if c <= evals] or [evals]
    for problem in problems:
        runs = {(m, s): v for m, p, s, v in results if p == problem}
        curves = {k: np.minimum.accumulate(v) for k, v in runs.items() if not isinstance(v, str)}
        optimum = PROBLEMS[problem].optimum
        if optimum is None:
            optimum = min(float(c[-1]) for c in curves.values())
        print(f"\n{problem}: median [IQR] regret after " + "/".join(map(str, checkpoints)) + " evals")
        for m in methods:
            mine = [curves[(m, s)] for s in range(seeds) if (m, s) in curves]
            if not mine:
                print(f"  {m:14s} {runs[(m, 0)]}")
                continue
            cells = []
            for c in checkpoints:
                reg = np.array([cur[c - 1] - optimum for cur in mine])
                q1, med, q3 = np.percentile(reg, [25, 50, 75])
                cells.append(f"{med:9.3g} [{q1:.2g}, {q3:.2g}]")
            print(f"  {m:14s} " + "  ".join(cells))


def _ours_timing(name: str, space: SearchSpace, fn: Callable[[dict], float], n_obs: int) -> float:
    rng = np.random.default_rng(HISTORY_SEED)
    history = []
    for seq in range(1, n_obs + 1):
        params = space.sample(rng)
        history.append(TrialResult(seq, params, TrialState.SUCCEEDED, fn(params)))
    tuner = TUNERS.create(name=name, space=space, optimize_mode="minimize", seed=0)
    tuner.rebuild(history)
    times = []
    for seq in range(n_obs + 1, n_obs + 1 + TIMED):
        start = time.perf_counter()
        params = tuner.suggest(1)[0].params
        times.append(time.perf_counter() - start)
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, fn(params)))
    return 1000 * float(np.median(times))


def _optuna_timing(name: str, problem: Problem, n_obs: int) -> float:
    import optuna

    study = optuna.create_study(sampler=_optuna_sampler(name, 0))
    space, rng = SearchSpace.from_dict(problem.space), np.random.default_rng(HISTORY_SEED)
    dists = {k: optuna.distributions.FloatDistribution(*v["_value"]) for k, v in problem.space.items()}
    for _ in range(n_obs):
        params = space.sample(rng)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=problem.fn(params)))
    times = []
    for _ in range(TIMED):
        start = time.perf_counter()
        trial = study.ask()
        _optuna_params(trial, problem.space)
        times.append(time.perf_counter() - start)
        study.tell(trial, problem.fn(trial.params))
    return 1000 * float(np.median(times))


def _timing_job(args: tuple[str, int]) -> tuple[str, int, float | str]:
    method, n_obs = args
    problem = PROBLEMS["hartmann6"]
    try:
        if method.startswith("optuna"):
            return method, n_obs, _optuna_timing(method, problem, n_obs)
        return method, n_obs, _ours_timing(method, SearchSpace.from_dict(problem.space), problem.fn, n_obs)
    except ImportError as exc:
        return method, n_obs, f"unavailable ({exc})"


def timing(methods: list[str]) -> None:
    plan = {"TPE": [100, 500, 1000], "Random": [100, 500, 1000], "Evolution": [100, 500, 1000],
            "Anneal": [100, 500], "GP": [100, 300], "optuna-TPE": [100, 500, 1000],
            "optuna-GP": [100, 300]}
    jobs = [(m, n) for m in methods if m in plan for n in plan[m]]
    with Pool(1) as pool:  # one at a time: a timing must not share the machine with another
        results = pool.map(_timing_job, jobs, chunksize=1)
    print(f"\nms per suggestion on hartmann6 (median of {TIMED}) at N observed trials")
    for m, n, ms in results:
        print(f"  {m:14s} N={n:5d}  " + (f"{ms:8.1f} ms" if isinstance(ms, float) else ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--tuners", default=",".join(OURS + PEERS))
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    methods = args.tuners.split(",")
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        parser.error(f"unknown tuner(s) {unknown}; choose from {', '.join(RUNNERS)}")
    if not args.timing_only:
        quality(methods, args.problems.split(","), args.evals, args.seeds)
    if not args.no_timing:
        timing(methods)


if __name__ == "__main__":
    main()
