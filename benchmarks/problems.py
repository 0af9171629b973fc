"""Benchmark problems for benchmarks/tuners.py: NNI search spaces with a function to minimise.

The synthetic functions are shifted by a fixed seeded offset so their optima sit off-centre: a
sampler that tries the middle of the box first gets no free win.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Params = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """A search space (NNI JSON form), the objective to minimise, and its optimum (None: unknown); a
    nested-choice problem also names the branch of a configuration and the best branch."""

    name: str
    space: dict[str, Any]
    fn: Callable[[Params], float]
    optimum: float | None
    branch: Callable[[Params], str] | None = None
    best_branch: str | None = None


def _uniform(names: list[str], low: float, high: float) -> dict[str, Any]:
    return {n: {"_type": "uniform", "_value": [low, high]} for n in names}


def _vec(p: Params, n: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(n)])


_SHIFT = np.random.default_rng(2024)


def branin(p: Params) -> float:
    x1, x2 = p["x0"], p["x1"]
    return ((x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: Params) -> float:
    x = _vec(p, 6)
    return float(-_H6_ALPHA @ np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)))


_ROSEN_SHIFT = _SHIFT.uniform(-1.5, 0.5, size=4)  # optimum at 1 + shift, inside [-2, 2]^4


def rosenbrock4(p: Params) -> float:
    x = _vec(p, 4) - _ROSEN_SHIFT
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


_ACKLEY_SHIFT = _SHIFT.uniform(-7, 7, size=5)  # optimum at the shift, inside [-10, 10]^5


def ackley5(p: Params) -> float:
    x = _vec(p, 5) - _ACKLEY_SHIFT
    return float(-20 * np.exp(-0.2 * np.sqrt(np.mean(x**2))) - np.exp(np.mean(np.cos(2 * np.pi * x)))
                 + 20 + math.e)


MIXED_SPACE = {
    "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]},
    "lr": {"_type": "loguniform", "_value": [1e-5, 1.0]},
    "layers": {"_type": "randint", "_value": [1, 9]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.6]},
}


def mixed(p: Params) -> float:
    """HPO-like: best at adam, lr = 10^-2.7, 5 layers, dropout 0.23 (value 0); lr matters most."""
    penalty = {"sgd": 0.8, "adam": 0.0, "rmsprop": 0.3}[p["optimizer"]]
    lr_opt = -2.7 + (0.5 if p["optimizer"] == "sgd" else 0.0)
    return ((math.log10(p["lr"]) - lr_opt) ** 2 + 0.15 * (p["layers"] - 5) ** 2
            + 4 * (p["dropout"] - 0.23) ** 2 + penalty)


HGB_SPACE = {
    "learning_rate": {"_type": "loguniform", "_value": [1e-3, 1.0]},
    "max_leaf_nodes": {"_type": "randint", "_value": [2, 64]},
    "min_samples_leaf": {"_type": "randint", "_value": [1, 80]},
    "l2_regularization": {"_type": "loguniform", "_value": [1e-4, 10.0]},
}


def hgb_diabetes(p: Params) -> float:
    """3-fold CV mean squared error (in thousands) of a 40-iteration HistGradientBoosting on diabetes."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold, cross_val_score
    from threadpoolctl import threadpool_limits

    x, y = load_diabetes(return_X_y=True)
    model = HistGradientBoostingRegressor(max_iter=40, early_stopping=False, random_state=0, **p)
    # one OpenMP thread: the benchmark runs two processes on two cores, and HGB's threads fighting them
    # made an evaluation take 3 s instead of 0.5 s
    with threadpool_limits(1):
        scores = cross_val_score(model, x, y, cv=KFold(3, shuffle=True, random_state=0),
                                 scoring="neg_mean_squared_error")
    return float(-scores.mean() / 1000)


_LEVY_SHIFT = _SHIFT.uniform(-5, 5, size=6)  # optimum at 1 + shift, inside [-10, 10]^6


def levy6(p: Params) -> float:
    """Levy function in 6-D, shifted; minimum 0 (held out: not used while tuning our tuners)."""
    w = 1 + (_vec(p, 6) - _LEVY_SHIFT - 1) / 4
    return float(np.sin(np.pi * w[0]) ** 2 + np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
                 + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


_ST_MIN = -39.16616570377142  # per dimension, at x = -2.903534


def styblinski5(p: Params) -> float:
    """Styblinski-Tang in 5-D on [-5, 5]^5 (optimum off-centre by construction); held out as levy6."""
    x = _vec(p, 5)
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x) - 5 * _ST_MIN)


NESTED_SPACE = {
    "scaler": {"_type": "choice", "_value": ["none", "standard", "minmax"]},
    "model": {"_type": "choice", "_value": [
        {"_name": "svm", "C": {"_type": "loguniform", "_value": [1e-3, 1e3]},
         "gamma": {"_type": "loguniform", "_value": [1e-4, 10.0]}},
        {"_name": "knn", "n_neighbors": {"_type": "randint", "_value": [1, 51]},
         "weights": {"_type": "choice", "_value": ["uniform", "distance"]}},
        {"_name": "rf", "n_estimators": {"_type": "randint", "_value": [10, 301]},
         "max_depth": {"_type": "randint", "_value": [2, 21]},
         "max_features": {"_type": "uniform", "_value": [0.1, 1.0]}},
    ]},
}


def nested(p: Params) -> float:
    """A model-selection surrogate shaped like an SVM / kNN / random-forest choice on a small tabular data
    set: the forest is good almost everywhere (error 0.035 at best), the SVM is best (0.02) but only in a
    narrow C/gamma region and only with a scaler, kNN in between. A tuner that judges branches by their
    average trial lands on the forest; the best-branch share in the benchmark says which it learned."""
    m, scaled = p["model"], p["scaler"] != "none"
    if m["_name"] == "svm":
        d2 = ((math.log10(m["C"]) - 1.3) / 2.0) ** 2 + ((math.log10(m["gamma"]) + 2.1) / 1.5) ** 2
        return 0.02 + (0.0 if scaled else 0.25) + 0.12 * (1 - math.exp(-d2 / 2)) + 0.005 * (p["scaler"] == "minmax")
    if m["_name"] == "knn":
        k = m["n_neighbors"]
        return (0.045 + (0.0 if scaled else 0.2) + 0.002 * abs(k - 13) + 0.01 * (m["weights"] == "uniform"))
    depth_pen = 0.004 * max(0, 8 - m["max_depth"]) ** 1.5
    return 0.035 + 0.03 * math.exp(-m["n_estimators"] / 60) + depth_pen + 0.02 * (m["max_features"] - 0.35) ** 2


PROBLEMS: dict[str, Problem] = {p.name: p for p in [
    Problem("branin", {"x0": {"_type": "uniform", "_value": [-5, 10]},
                       "x1": {"_type": "uniform", "_value": [0, 15]}}, branin, 0.397887357729738),
    Problem("hartmann6", _uniform([f"x{i}" for i in range(6)], 0, 1), hartmann6, -3.32236801141551),
    Problem("rosenbrock4", _uniform([f"x{i}" for i in range(4)], -2, 2), rosenbrock4, 0.0),
    Problem("ackley5", _uniform([f"x{i}" for i in range(5)], -10, 10), ackley5, 0.0),
    Problem("mixed", MIXED_SPACE, mixed, 0.0),
    Problem("levy6", _uniform([f"x{i}" for i in range(6)], -10, 10), levy6, 0.0),
    Problem("styblinski5", _uniform([f"x{i}" for i in range(5)], -5, 5), styblinski5, 0.0),
    Problem("nested", NESTED_SPACE, nested, 0.02, lambda p: p["model"]["_name"], "svm"),
    Problem("hgb_diabetes", HGB_SPACE, hgb_diabetes, None),
]}
