"""A quadratic model of the loss near the best trial, for TPE's end game: its minimiser
is where a batch of local draws around one incumbent has the most to gain (benchmarks/results/tuners.md,
round eight)."""

from __future__ import annotations

import numpy as np

#: The fit uses the POINTS_PER_COEF x (its number of coefficients) trials nearest the centre, and needs at
#: least two more trials than coefficients.
POINTS_PER_COEF = 1.5
#: Ridge on the standardised fit's linear and quadratic coefficients, per trial used.
RIDGE = 1e-3
#: Past FULL_COLUMNS columns the quadratic has no cross terms (1 + 2d coefficients instead of (d + 1)(d + 2) / 2,
#: 21 at 5 columns): the trials near the best one in the end game cannot support the full one.
FULL_COLUMNS = 4


def quad_min(x: np.ndarray, y: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The minimiser of a least-squares quadratic (separable past FULL_COLUMNS columns) in the columns of `x`
    through the losses `y` of the trials nearest `centre` (distances in `scale` per column), clipped to the
    box those trials span; None with too few trials or a fit that is not convex. A column on which those
    trials all agree (an integer column on one value) stays at `centre`'s value and the fit is made on the
    others. No fit either when the losses are all equal or overflow the standardisation."""
    d = x.shape[1]
    upper = np.triu_indices(d) if d <= FULL_COLUMNS else (np.arange(d), np.arange(d))
    n_coef = 1 + d + len(upper[0])
    if len(x) < n_coef + 2:
        return None
    near = np.argsort(np.sqrt((((x - centre) / scale) ** 2).sum(axis=1)), kind="stable")
    keep = near[:int(POINTS_PER_COEF * n_coef)]
    xs, ys = x[keep], y[keep]
    mid, spread = xs.mean(axis=0), xs.std(axis=0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # equal losses, or near the float limit
        t = (ys - ys.mean()) / ys.std()
    vary = spread > 0
    if not np.isfinite(t).all() or not vary.any():
        return None
    if not vary.all():
        sub = quad_min(xs[:, vary], ys, centre[vary], scale[vary])
        if sub is None:
            return None
        out = centre.copy()
        out[vary] = sub
        return out
    z = (xs - mid) / spread
    feats = np.column_stack([np.ones(len(z)), z, z[:, upper[0]] * z[:, upper[1]]])
    ridge = RIDGE * len(z) * np.eye(n_coef)
    ridge[0, 0] = 0.0
    coef = np.linalg.solve(feats.T @ feats + ridge, feats.T @ t)
    hessian = np.zeros((d, d))
    hessian[upper] = coef[1 + d:]
    hessian = hessian + hessian.T  # the square terms' coefficients doubled, the cross terms' (if any) once
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return None
    return mid + spread * np.clip(np.linalg.solve(hessian, -coef[1:1 + d]), z.min(axis=0), z.max(axis=0))
