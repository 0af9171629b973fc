"""Learning-curve families and an extrapolation that takes the median of their fitted predictions.

Curves are fitted to an *increasing* curve (accuracy-like; callers negate losses) rescaled so its first
value is 0 and its range is 1, which keeps initial guesses and bounds valid for any metric scale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

CurveFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Family:
    """A parametric learning curve f(x, *params), x = epoch (1-based), with a start point and bounds."""

    name: str
    fn: CurveFn
    p0: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]


def _pow3(x: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * x ** (-alpha)


def _loglinear(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.log(x) + b


def _exp3(x: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - np.exp(-a * x + b)


def _ilog2(x: np.ndarray, c: float, a: float) -> np.ndarray:
    return c - a / np.log(x + 1)


def _mmf(x: np.ndarray, alpha: float, beta: float, k: float, delta: float) -> np.ndarray:
    return alpha - (alpha - beta) / (1 + (k * x) ** delta)


def _janoschek(x: np.ndarray, alpha: float, beta: float, k: float, delta: float) -> np.ndarray:
    return alpha - (alpha - beta) * np.exp(-k * x ** delta)


INF = np.inf
#: The families, as in NNI's curve-fitting model set (Domhan et al. 2015), with starts for a rescaled curve.
FAMILIES: tuple[Family, ...] = (
    Family("pow3", _pow3, (1.0, 1.0, 0.5), (-INF, -INF, 1e-3), (INF, INF, 10.0)),
    Family("loglinear", _loglinear, (0.3, 0.0), (-INF, -INF), (INF, INF)),
    Family("exp3", _exp3, (1.0, 0.3, 0.3), (-INF, 1e-4, -50.0), (INF, 10.0, 50.0)),
    Family("ilog2", _ilog2, (1.5, 1.0), (-INF, -INF), (INF, INF)),
    Family("mmf", _mmf, (1.0, 0.0, 0.5, 1.0), (-INF, -INF, 1e-4, 1e-2), (INF, INF, 100.0, 10.0)),
    Family("janoschek", _janoschek, (1.0, 0.0, 0.3, 1.0), (-INF, -INF, 1e-4, 1e-2), (INF, INF, 10.0, 5.0)),
)


def fit_family(family: Family, x: np.ndarray, y: np.ndarray, *, maxfev: int = 100) -> np.ndarray | None:
    """Least-squares parameters of `family` for (x, y), or None when the fit fails or is not finite."""
    if len(y) <= len(family.p0):
        return None
    bounded = np.isfinite(family.lower).any() or np.isfinite(family.upper).any()
    budget = {"max_nfev": maxfev} if bounded else {"maxfev": maxfev}  # trf vs. lm spell it differently
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            params, _ = curve_fit(family.fn, x, y, p0=family.p0, bounds=(family.lower, family.upper),
                                  **budget)
        except (RuntimeError, ValueError, FloatingPointError):
            return None
    return params if np.all(np.isfinite(params)) else None


def predict(curve: Sequence[float], at: int, families: Sequence[Family] = FAMILIES) -> float | None:
    """The median over `families` of the fitted value of the increasing `curve` at epoch `at`.

    None when no family fits. A flat curve predicts its last value.
    """
    y = np.asarray(curve, dtype=float)
    if len(y) == 0 or not np.all(np.isfinite(y)):
        return None
    offset, scale = y[0], float(np.ptp(y))
    if scale == 0.0:
        return float(y[-1])
    x = np.arange(1, len(y) + 1, dtype=float)
    z = (y - offset) / scale
    target = np.array([float(at)])
    predictions = []
    for family in families:
        params = fit_family(family, x, z)
        if params is None:
            continue
        with np.errstate(all="ignore"):
            value = float(family.fn(target, *params)[0])
        if np.isfinite(value):
            predictions.append(value)
    if not predictions:
        return None
    return float(np.median(predictions)) * scale + offset
