"""Parzen estimators for TPE: a weighted mixture of product kernels over [0, 1] columns and categories.

Each observation is one kernel: a truncated normal per numeric column (on the unit scale the search
space encodes to: log for the log types, the CDF for the normal types), a discretised truncated normal
for integer columns (mass of the kernel over the integer's own bin, so neighbours share evidence), and
a smoothed one-hot for categorical columns. A prior kernel (the whole range; uniform categories) is
mixed in with weight ``PRIOR_WEIGHT``, as in Optuna and hyperopt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoqueue.tuners._special import log_ndtr, logsumexp, ndtr, ndtri

PRIOR_WEIGHT = 1.0
#: Kernels at most this many: the magic clip's floor on a bandwidth is 1 / min(MAGIC_CAP, 1 + kernels).
MAGIC_CAP = 100.0
_TINY = 1e-300


@dataclass(frozen=True)
class ColumnKind:
    """How one model column behaves: numeric (bins = 0: continuous; bins = k: k equal integer bins on
    [0, 1]) or categorical (n_categories > 0, values are option indices)."""

    bins: int = 0
    n_categories: int = 0


def _draw_choices(rng: np.random.Generator, probs: np.ndarray, m: int) -> np.ndarray:
    """`m` option indices, the k-th drawn from row k of `probs` (or each from `probs` when it is one row):
    an inverse-CDF draw, the index capped where the sum of a row rounds below 1."""
    cdf = np.cumsum(probs, axis=-1)
    return np.minimum((rng.random((m, 1)) > cdf).sum(axis=1), probs.shape[-1] - 1)


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a < b, stable in both tails."""
    flip = a > 0  # use the upper tail where both are positive: Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    return log_hi + np.log1p(-np.exp(np.minimum(log_lo - log_hi, -1e-16)))


class Parzen:
    """The mixture built from `obs` (rows = observations, one value per column), with per-observation
    `weights`; `prior_weight` adds the prior kernel."""

    def __init__(self, obs: np.ndarray, weights: np.ndarray, kinds: list[ColumnKind],
                 prior_weight: float = PRIOR_WEIGHT) -> None:
        self.kinds = kinds
        n = len(obs)
        w = np.append(np.asarray(weights, dtype=float), prior_weight)
        self.log_w = np.log(w / w.sum())
        self.mus: dict[int, np.ndarray] = {}
        self.sigmas: dict[int, np.ndarray] = {}
        self.cat_probs: dict[int, np.ndarray] = {}
        for j, kind in enumerate(kinds):
            column = obs[:, j] if n else np.zeros(0)
            if kind.n_categories:
                k = kind.n_categories
                probs = np.full((n + 1, k), prior_weight / (n + 1))
                probs[np.arange(n), column.astype(int)] += 1.0
                self.cat_probs[j] = probs / probs.sum(axis=1, keepdims=True)
            else:
                self.mus[j] = np.append(column, 0.5)
                self.sigmas[j] = np.append(_bandwidths(column), 1.0)

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """`m` draws from the mixture (integer columns land on bin centres)."""
        comp = rng.choice(len(self.log_w), size=m, p=np.exp(self.log_w))
        out = np.empty((m, len(self.kinds)))
        draws = _TruncnormDraws(rng)
        for j, kind in enumerate(self.kinds):
            if kind.n_categories:
                out[:, j] = _draw_choices(rng, self.cat_probs[j][comp], m)
                continue
            draws.add(j, self.mus[j][comp], self.sigmas[j][comp])
        return draws.fill(out, self.kinds)

    def sample_near(self, rng: np.random.Generator, i: int, m: int, scale: float) -> np.ndarray:
        """`m` draws from observation `i`'s kernel alone (local search around it): its numeric widths times
        `scale`, at least one bin for an integer column, and its categories drawn from its smoothed one-hot,
        so other options stay reachable (kept as observed, they froze TPE at 16 in flight on a wrong one:
        benchmarks/results/tuners.md, round six)."""
        out = np.empty((m, len(self.kinds)))
        draws = _TruncnormDraws(rng)
        for j, kind in enumerate(self.kinds):
            if kind.n_categories:  # its own option mostly, the others with its kernel's smoothing
                out[:, j] = _draw_choices(rng, self.cat_probs[j][i], m)
                continue
            width = max(scale * self.sigmas[j][i], 1.0 / kind.bins if kind.bins else 0.0)
            draws.add(j, np.full(m, self.mus[j][i]), np.full(m, width))
        return draws.fill(out, self.kinds)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (mass, for integer and categorical columns) of each row of `x`."""
        total = np.broadcast_to(self.log_w, (len(x), len(self.log_w))).copy()
        for j, kind in enumerate(self.kinds):
            if kind.n_categories:
                total += np.log(np.maximum(self.cat_probs[j][:, x[:, j].astype(int)].T, _TINY))
                continue
            mu, sigma = self.mus[j][None, :], self.sigmas[j][None, :]
            norm = _log_mass(-mu / sigma, (1.0 - mu) / sigma)
            xj = x[:, j][:, None]
            if kind.bins:
                half = 0.5 / kind.bins
                total += _log_mass((xj - half - mu) / sigma, (xj + half - mu) / sigma) - norm
            else:
                z = (xj - mu) / sigma
                total += -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi) - norm
        return logsumexp(total, axis=1)


class _TruncnormDraws:
    """Draws from normals (mu, sigma) truncated to [0, 1], by inverting their CDF, for several columns: each
    column's uniforms are drawn as it is added (the Generator's order), the inversion runs once for all
    (ndtri, a numpy port, costs mostly its fixed overhead on a column's few points)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.columns: list[int] = []
        self.mu: list[np.ndarray] = []
        self.sigma: list[np.ndarray] = []
        self.u: list[np.ndarray] = []

    def add(self, j: int, mu: np.ndarray, sigma: np.ndarray) -> None:
        """Column `j`: one draw per element of `mu` and `sigma`."""
        lo, hi = ndtr(-mu / sigma), ndtr((1.0 - mu) / sigma)
        self.u.append(lo + self.rng.random(len(mu)) * np.maximum(hi - lo, 0.0))
        self.columns.append(j)
        self.mu.append(mu)
        self.sigma.append(sigma)

    def fill(self, out: np.ndarray, kinds: list[ColumnKind]) -> np.ndarray:
        """`out` with the added columns set to their draws (integer columns on bin centres)."""
        if self.columns:
            mu, sigma, u = np.stack(self.mu), np.stack(self.sigma), np.stack(self.u)
            x = np.clip(mu + sigma * ndtri(np.clip(u, 1e-16, 1 - 1e-16)), 0.0, 1.0)
            for j, row in zip(self.columns, x, strict=True):
                out[:, j] = snap(row, kinds[j])
        return out


def snap(x: np.ndarray, kind: ColumnKind) -> np.ndarray:
    """Unit values moved to the centre of their integer bin (unchanged for continuous columns)."""
    if not kind.bins:
        return x
    return (np.minimum(np.floor(x * kind.bins), kind.bins - 1) + 0.5) / kind.bins


def _bandwidths(mus: np.ndarray) -> np.ndarray:
    """Each kernel's width: the larger gap to its neighbours (the ends of [0, 1] excluded), clipped to
    [1 / min(MAGIC_CAP, 1 + kernels), 1] so a cluster of points cannot shrink the density to spikes."""
    n = len(mus)
    if n == 0:
        return np.zeros(0)
    order = np.argsort(mus)
    padded = np.concatenate([[0.0], mus[order], [1.0]])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if n >= 2:  # endpoints are not neighbours: the outer kernels take their one inner gap
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    sigmas = np.empty(n)
    sigmas[order] = gaps
    return np.clip(sigmas, 1.0 / min(MAGIC_CAP, 1.0 + n + 1), 1.0)
