"""Bounded L-BFGS-B minimisation, as ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` does it,
without importing ``scipy.optimize`` (with ``scipy.linalg``, ``scipy.sparse`` and more: about 40 MiB).

It drives scipy's own compiled solver (``optimize/_lbfgsb``'s ``setulb``, loaded alone, see
_scipy_files) with the loop of scipy 1.17's ``_minimize_lbfgsb``: the same workspace, arguments and
stopping rules, so the same iterates and result bit for bit (tests/tuners/test_scipy_parts.py runs both
on the GP's objectives). scipy skips evaluating again the point it evaluated last; for a pure ``fun``
that changes no result, so this loop simply evaluates each point setulb asks for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hpoqueue.tuners._scipy_files import compiled

_setulb = compiled("optimize", "_lbfgsb").setulb
_FG, _NEW_X, _STOP = 3, 1, 5  # setulb's task codes: wants f and g at x; took a step; stop (as told)
_ITERATION_LIMIT, _EVALUATION_LIMIT = 504, 502

FunAndGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]


def minimize_lbfgsb(fun: FunAndGrad, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
                    maxiter: int = 15000, ftol: float = 2.2204460492503131e-09, gtol: float = 1e-5,
                    maxcor: int = 10, maxls: int = 20, maxfun: int = 15000) -> tuple[np.ndarray, float]:
    """The point L-BFGS-B ends at from ``x0`` (clipped into the box ``[lower, upper]``, infinite bounds
    allowed) and the value there; ``fun`` returns the value and gradient at a point (its own copy).
    The options and their defaults are scipy's."""
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    x = np.array(np.clip(np.asarray(x0).ravel(), lower, upper), dtype=np.float64)
    n, m = x.size, maxcor
    has_lower, has_upper = np.isfinite(lower), np.isfinite(upper)
    nbd = np.where(has_lower, np.where(has_upper, 2, 1), np.where(has_upper, 3, 0)).astype(np.int32)
    low_bnd, upper_bnd = np.where(has_lower, lower, 0.0), np.where(has_upper, upper, 0.0)
    f: float | np.ndarray = np.array(0.0)
    g = np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task, ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave, dsave = np.zeros(4, dtype=np.int32), np.zeros(44, dtype=np.int32), np.zeros(29)
    nfev = iterations = 0
    while True:
        g = g.astype(np.float64)
        _setulb(m, x, low_bnd, upper_bnd, nbd, f, g, ftol / np.finfo(float).eps, gtol, wa, iwa, task,
                lsave, isave, dsave, maxls, ln_task)
        if task[0] == _FG:
            value, grad = fun(x.copy())
            f, g = float(value), np.atleast_1d(grad)
            nfev += 1
        elif task[0] == _NEW_X:
            iterations += 1
            if iterations >= maxiter:
                task[:] = _STOP, _ITERATION_LIMIT
            elif nfev > maxfun:
                task[:] = _STOP, _EVALUATION_LIMIT
        else:
            return x, float(f)
