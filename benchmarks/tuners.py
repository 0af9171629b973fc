"""Tuner quality and speed, ours beside Optuna, hyperopt and plain random search (not a test).

Run: ``python benchmarks/tuners.py`` (100 evaluations x 10 seeds on every problem of
benchmarks/problems.py); shrink with ``--evals --seeds --problems --tuners``, cap a slow method's seeds
with ``--seed-cap optuna-GP=3``; ``--timing-only`` / ``--no-timing``. Prints median [IQR] regret at
25/50/100 evaluations (regret = best value so far minus the optimum, or minus the best value any method
reached in this run when the optimum is unknown), the share of trials on the best branch of a nested
choice, a summary line per problem, then milliseconds per suggestion at N observed trials.
``--concurrency 1 4 16`` runs each k with every suggestion made while the k - 1 before it are still
pending (the scheduler's situation with k trials in flight). Our tuners are told, as the scheduler tells
them, how many of the evaluations are left (maxTrialNumber less those created: ``set_trials_left``);
Optuna's samplers have no such input. Two worker processes (``--workers``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import deque
from collections.abc import Callable
from multiprocessing import Pool

import numpy as np
from problems import PROBLEMS, Problem

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import TUNERS

OURS = ["Random", "TPE", "Anneal", "Evolution", "GP", "Auto"]
PEERS = ["optuna-TPE", "optuna-GP", "hyperopt-TPE", "plain-random"]
#: the methods run by default (Anneal and Evolution on request: they are not what this benchmark compares)
DEFAULT = ["TPE", "GP", "Auto", "optuna-TPE", "optuna-GP", "hyperopt-TPE", "plain-random"]
#: methods that see pending trials, for --concurrency (Optuna's GP sampler ignores running trials)
CONCURRENT = ["TPE", "GP", "Auto", "Random", "Anneal", "Evolution", "optuna-TPE", "hyperopt-TPE"]
TIMED = 5  #: suggestions timed at each history size (the median is printed)
#: seeds the random history the timed tuners start from; not 0, the tuners' own seed, or a random tuner
#: would draw that very history again and spend its time rejecting repeats
HISTORY_SEED = 12345
Run = list[tuple[dict, float]]  #: (params, value) of every evaluation, in order


def _create(name: str, problem: Problem, seed: int):  # noqa: ANN202 - a BaseTuner
    """One of ours; hyperopt-TPE is hyperopt's tpe.suggest as NNI runs it (TPE, implementation: hyperopt)."""
    args = {"implementation": "hyperopt"} if name == "hyperopt-TPE" else {}
    return TUNERS.create(name="TPE" if name == "hyperopt-TPE" else name, class_args=args,
                         space=SearchSpace.from_dict(problem.space), optimize_mode="minimize", seed=seed)


def _run_ours(name: str, problem: Problem, evals: int, seed: int, k: int) -> Run:
    """`evals` evaluations, each suggestion made while the k - 1 suggested before it are still pending."""
    tuner, pending, out, seq = _create(name, problem, seed), deque(), [], 0
    while len(out) < evals:
        while len(pending) < k and seq < evals:
            tuner.set_trials_left(evals - seq)  # as the scheduler does: maxTrialNumber less those created
            seq += 1
            pending.append((seq, tuner.suggest(1)[0].params))
        done, params = pending.popleft()
        out.append((params, problem.fn(params)))
        tuner.observe(TrialResult(done, params, TrialState.SUCCEEDED, out[-1][1]))
    return out


def _optuna_params(trial, space: dict, prefix: str = "") -> dict:  # noqa: ANN001 - optuna.Trial, lazily
    """NNI params from an Optuna trial; a nested choice picks its option by _name, then its own params."""
    out = {}
    for name, spec in space.items():
        if name == "_name":
            continue
        kind, v, label = spec["_type"], spec["_value"], prefix + name
        if kind == "choice" and any(isinstance(o, dict) for o in v):
            names = [o["_name"] if isinstance(o, dict) else o for o in v]
            picked = v[names.index(trial.suggest_categorical(label, names))]
            out[name] = ({"_name": picked["_name"], **_optuna_params(trial, picked, f"{label}/{picked['_name']}/")}
                         if isinstance(picked, dict) else picked)
        elif kind == "choice":
            out[name] = trial.suggest_categorical(label, v)
        elif kind == "randint":
            out[name] = trial.suggest_int(label, v[0], v[1] - 1)
        else:
            out[name] = trial.suggest_float(label, v[0], v[1], log=kind == "loguniform")
    return out


def _optuna_sampler(name: str, seed: int):  # noqa: ANN202
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    if name == "optuna-GP":
        return optuna.samplers.GPSampler(seed=seed)
    # multivariate, group (nested choices) and constant_liar (pending trials) are Optuna 5's defaults
    # where it has them; named here so older versions run the same algorithm
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def _run_optuna(name: str, problem: Problem, evals: int, seed: int, k: int) -> Run:
    """Optuna ask/tell with k - 1 trials RUNNING at each ask (its constant liar sees them)."""
    import optuna

    if name == "optuna-GP":  # two benchmark processes on two cores: one torch thread each
        import torch

        torch.set_num_threads(1)
    study = optuna.create_study(sampler=_optuna_sampler(name, seed))
    pending, out, asked = deque(), [], 0
    while len(out) < evals:
        while len(pending) < k and asked < evals:
            asked += 1
            trial = study.ask()
            pending.append((trial, _optuna_params(trial, problem.space)))
        trial, params = pending.popleft()
        out.append((params, problem.fn(params)))
        study.tell(trial, out[-1][1])
    return out


def _run_plain_random(name: str, problem: Problem, evals: int, seed: int, k: int) -> Run:
    space, rng = SearchSpace.from_dict(problem.space), np.random.default_rng(seed)
    return [(p, problem.fn(p)) for p in (space.sample(rng) for _ in range(evals))]


RUNNERS: dict[str, Callable[[str, Problem, int, int, int], Run]] = {
    **dict.fromkeys([*OURS, "hyperopt-TPE"], _run_ours), "optuna-TPE": _run_optuna, "optuna-GP": _run_optuna,
    "plain-random": _run_plain_random}


def _job(args: tuple[str, str, int, int, int]) -> tuple[str, str, int, int, list[float] | str, float | None]:
    """(method, problem, seed, k, values or why not, share of trials on the best branch)."""
    method, problem, evals, seed, k = args
    prob = PROBLEMS[problem]
    try:
        run = RUNNERS[method](method, prob, evals, seed, k)
    except ImportError as exc:  # optuna's GPSampler needs torch
        return method, problem, seed, k, f"unavailable: {exc}", None
    share = (None if prob.branch is None
             else float(np.mean([prob.branch(p) == prob.best_branch for p, _ in run])))
    return method, problem, seed, k, [v for _, v in run], share


def _auto_pick(problem: str, evals: int) -> str:
    """The tuner Auto runs for all of `evals` evaluations on `problem` ('Auto' if it switches)."""
    from hpoqueue.tuners._auto import GP_MAX_TRIALS, gp_suits

    if not gp_suits(SearchSpace.from_dict(PROBLEMS[problem].space)):
        return "TPE"
    return "GP" if evals <= GP_MAX_TRIALS else "Auto"


def _one_thread() -> None:
    """One BLAS/OpenMP thread per worker: two workers on two cores, and GP's small matrix products run
    ten times slower in CPU time with threads fighting over them."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _cell(reg: np.ndarray) -> str:
    q1, med, q3 = np.percentile(reg, [25, 50, 75])
    return f"{med:9.3g} [{q1:.2g}, {q3:.2g}]"


def quality(methods: list[str], problems: list[str], evals: int, seeds: int, ks: list[int],
            seed_caps: dict[str, int], workers: int = 2) -> None:
    """Median [IQR] regret per problem and method at 25/50/100 evaluations (and each k), printed problem by
    problem as each finishes."""
    picks = {p: _auto_pick(p, evals) for p in problems} if "Auto" in methods else {}
    checkpoints = [c for c in (25, 50, 100) if c <= evals] or [evals]
    summary: dict[tuple[str, str, int], float] = {}
    pool = Pool(workers, initializer=_one_thread)
    for problem in problems:
        jobs = [(m, problem, evals, s, k) for m in methods for k in ks
                if (k == 1 or m in CONCURRENT) and not (m == "Auto" and picks[problem] in methods)
                for s in range(min(seeds, seed_caps.get(m, seeds)))]
        results = pool.map(_job, jobs, chunksize=1)
        # Auto's run is its pick's run, seed for seed (the same tuner with the same seed; a test checks it)
        results += [("Auto", p, s, k, v, sh) for m, p, s, k, v, sh in results if picks.get(p) == m]
        runs = {(m, s, k): (v, sh) for m, p, s, k, v, sh in results}
        curves = {key: np.minimum.accumulate(v) for key, (v, _) in runs.items() if not isinstance(v, str)}
        optimum = PROBLEMS[problem].optimum
        if optimum is None:
            optimum = min(float(c[-1]) for c in curves.values())
        nested = PROBLEMS[problem].branch is not None
        for k in ks:
            head = f"after {'/'.join(map(str, checkpoints))} evals"
            print(f"\n{problem}" + (f", concurrency {k}" if len(ks) > 1 else "") + f": median [IQR] regret {head}"
                  + (f"; share of trials on the best branch ({PROBLEMS[problem].best_branch})" if nested else ""))
            for m in methods:
                mine = [key for key in curves if key[0] == m and key[2] == k]
                if not mine:
                    why = next((v for (mm, _, kk), (v, _) in runs.items() if mm == m and kk == k), None)
                    if why is not None:
                        print(f"  {m:14s} {why}")
                    continue
                cells = [_cell(np.array([curves[key][c - 1] - optimum for key in mine])) for c in checkpoints]
                summary[(problem, m, k)] = float(np.median([curves[key][-1] - optimum for key in mine]))
                shares = [runs[key][1] for key in mine]
                label = f"Auto (={picks[problem]})" if m == "Auto" else m
                print(f"  {label:14s} " + "  ".join(cells) + (f"   seeds {len(mine)}" if len(mine) < seeds else "")
                      + (f"   best branch {np.median(shares):.0%}" if nested else ""), flush=True)
    pool.close()
    _summary(summary, methods, problems, ks)


def _summary(summary: dict[tuple[str, str, int], float], methods: list[str], problems: list[str],
             ks: list[int]) -> None:
    """One line per problem: median final regret of every method (and, with several k, each k)."""
    cols = [(m, k) for k in ks for m in methods if (m, k) in {(mm, kk) for _, mm, kk in summary}]
    print("\nmedian regret at the last evaluation" + (" (method@k: k concurrent)" if len(ks) > 1 else ""))
    names = [m if len(ks) == 1 else f"{m}@{k}" for m, k in cols]
    print(f"  {'problem':12s} " + " ".join(f"{n:>13s}" for n in names))
    for problem in problems:
        print(f"  {problem:12s} " + " ".join(f"{summary[(problem, m, k)]:13.3g}" if (problem, m, k) in summary
                                             else f"{'-':>13s}" for m, k in cols))


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
    parser.add_argument("--tuners", default=",".join(DEFAULT), help=f"from {', '.join(RUNNERS)}")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1], metavar="K",
                        help="run each k: every suggestion made with the k - 1 before it pending, e.g. 1 4 16")
    parser.add_argument("--seed-cap", action="append", default=[], metavar="METHOD=N",
                        help="run METHOD on at most N seeds (optuna-GP=3: it is slow)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the quality runs (default 2)")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    methods = args.tuners.split(",")
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        parser.error(f"unknown tuner(s) {unknown}; choose from {', '.join(RUNNERS)}")
    try:
        caps = {m: int(n) for m, _, n in (c.partition("=") for c in args.seed_cap)}
    except ValueError:
        parser.error("--seed-cap takes METHOD=N, e.g. optuna-GP=3")
    if not args.timing_only:
        quality(methods, args.problems.split(","), args.evals, args.seeds, args.concurrency, caps, args.workers)
    if not args.no_timing:
        timing(methods)


if __name__ == "__main__":
    main()
