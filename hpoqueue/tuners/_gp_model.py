"""Gaussian-process math for GPTuner: Matérn 5/2 ARD kernel, MAP kernel fit, posterior, acquisitions.

Numpy and scipy's compiled routines, without scipy's packages (_special, _linalg, _lbfgsb). Inputs live
in [0, 1]^d (the search space's encoding), targets are losses standardised by the caller. Kernel
parameters are kept as a raw vector
``[log inverse squared lengthscales (d), log kernel scale, log(noise - 0.99 * MIN_NOISE)]`` so the
fit is unconstrained; weak priors on them keep the fit sane with few points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoqueue.tuners._lbfgsb import minimize_lbfgsb
from hpoqueue.tuners._linalg import cho_solve_lower, cholesky_lower, solve_lower
from hpoqueue.tuners._special import erfcx, log_ndtr, ndtr

MIN_NOISE = 1e-8
_SQRT5 = np.sqrt(5.0)
_SQRT_HALF_PI = np.sqrt(np.pi / 2.0)
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _matern(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn 5/2 as a function of the squared scaled distance, and its derivative in r2."""
    r = np.sqrt(5.0 * np.maximum(r2, 0.0))
    e = np.exp(-r)
    return e * (1.0 + r + (5.0 / 3.0) * r2), (-5.0 / 6.0) * (1.0 + r) * e


def _sqdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-dimension squared differences, shape (len(a), len(b), d)."""
    return (a[:, None, :] - b[None, :, :]) ** 2


def _scaled_r2(a: np.ndarray, b: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Squared distances with per-dimension inverse squared lengthscales `rho`, by matrix products."""
    sa, sb = a * np.sqrt(rho), b * np.sqrt(rho)
    r2 = (sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * sa @ sb.T
    return np.maximum(r2, 0.0)


def _unpack(raw: np.ndarray) -> tuple[np.ndarray, float, float]:
    d = raw.size - 2
    return np.exp(raw[:d]), float(np.exp(raw[d])), float(np.exp(raw[d + 1]) + MIN_NOISE)


def _neg_log_posterior(raw: np.ndarray, sq: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood minus log prior of the kernel parameters, with gradient."""
    rho, scale, noise = _unpack(raw)
    d, n = rho.size, y.size
    m, dm = _matern(sq @ rho)
    kmat = scale * m
    kmat[np.diag_indices(n)] += noise
    try:
        chol = cholesky_lower(kmat)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(raw)
    alpha = cho_solve_lower(chol, y)
    nll = 0.5 * y @ alpha + np.log(np.diag(chol)).sum()
    w = np.outer(alpha, alpha) - cho_solve_lower(chol, np.eye(n))
    grad = np.empty_like(raw)
    wdm = w * (scale * dm)
    grad[:d] = -0.5 * rho * np.einsum("ij,ijk->k", wdm, sq)
    grad[d] = -0.5 * np.sum(w * (scale * m))
    grad[d + 1] = -0.5 * np.trace(w) * (noise - MIN_NOISE)
    # Priors (as Optuna's GPSampler): shrink lengthscales towards 1, Gamma(2, 1) scale,
    # Gamma(1.1, 30) noise, so a handful of points cannot fit a degenerate kernel.
    prior = (-(0.1 / rho + 0.1 * rho).sum() + np.log(scale) - scale
             + 0.1 * np.log(noise) - 30.0 * noise)
    grad[:d] -= 0.1 / rho - 0.1 * rho
    grad[d] -= 1.0 - scale
    grad[d + 1] -= (0.1 / noise - 30.0) * (noise - MIN_NOISE)
    return float(nll - prior), grad


def default_raw(dim: int) -> np.ndarray:
    """Unit lengthscales, unit scale, small noise: the starting point of every fit."""
    return np.concatenate([np.zeros(dim), [0.0, np.log(1e-2)]])


def fit_kernel(x: np.ndarray, y: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    """MAP kernel parameters by L-BFGS-B from each of `starts` (bounded raw values); the best wins."""
    sq = _sqdiff(x, x)
    d = x.shape[1]
    lower, upper = np.array([-9.0] * d + [-6.0, -16.0]), np.array([9.0] * d + [4.0, 1.0])
    best_raw, best_val = starts[0], np.inf
    for start in starts:
        raw, value = minimize_lbfgsb(lambda r: _neg_log_posterior(r, sq, y), np.clip(start, lower, upper),
                                     lower, upper, maxiter=200)
        if np.isfinite(value) and value < best_val:
            best_raw, best_val = raw, value
    return best_raw


def _robust_cholesky(kmat: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding jitter (1e-8 up to 1e-2 of the scale) while rounding breaks it:
    nearly equal inputs, normal once the search converges, make the kernel matrix nearly singular."""
    jitter = 0.0
    while True:
        try:
            return cholesky_lower(kmat + jitter * np.eye(len(kmat)))
        except np.linalg.LinAlgError:
            jitter = 1e-8 * float(np.mean(np.diag(kmat))) if jitter == 0.0 else jitter * 100.0
            if jitter > 1e-2 * float(np.mean(np.diag(kmat))):
                raise


@dataclass
class Posterior:
    """A GP conditioned on (x, y) with fixed kernel parameters; the Cholesky factor is computed once."""

    x: np.ndarray
    y: np.ndarray
    raw: np.ndarray

    def __post_init__(self) -> None:
        self.rho, self.scale, self.noise = _unpack(self.raw)
        kmat = self.scale * _matern(_scaled_r2(self.x, self.x, self.rho))[0]
        kmat[np.diag_indices(len(self.y))] += self.noise
        self.chol = _robust_cholesky(kmat)
        self.alpha = cho_solve_lower(self.chol, self.y)

    def predict(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of f at the rows of `xq`."""
        kq = self.scale * _matern(_scaled_r2(xq, self.x, self.rho))[0]
        v = solve_lower(self.chol, kq.T)
        var = np.maximum(self.scale - np.sum(v * v, axis=0), 1e-12)
        return kq @ self.alpha, np.sqrt(var)

    def predict_grad(self, xq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, sd and their gradients in x at the rows of `xq` (one triangular solve for all rows)."""
        diff = xq[:, None, :] - self.x[None, :, :]
        m, dm = _matern((diff * diff) @ self.rho)
        k = self.scale * m
        dk = (self.scale * 2.0 * dm)[:, :, None] * diff * self.rho
        kinv_k = cho_solve_lower(self.chol, k.T).T
        sd = np.sqrt(np.maximum(self.scale - np.sum(k * kinv_k, axis=1), 1e-12))
        dmean = np.einsum("knd,n->kd", dk, self.alpha)
        dsd = -np.einsum("knd,kn->kd", dk, kinv_k) / sd[:, None]
        return k @ self.alpha, sd, dmean, dsd


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z * Phi(z)), stable for very negative z (Mills ratio through erfcx)."""
    z = np.maximum(np.atleast_1d(np.asarray(z, dtype=float)), -1e3)
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    out = np.empty_like(z)
    hi = z > -1.0
    out[hi] = np.log(np.exp(log_phi[hi]) + z[hi] * ndtr(z[hi]))
    zl = z[~hi]
    out[~hi] = log_phi[~hi] + np.log1p(zl * erfcx(-zl / np.sqrt(2.0)) * _SQRT_HALF_PI)
    return out


@dataclass(frozen=True)
class Acquisition:
    """An acquisition to MAXIMISE for a minimisation problem: log EI, log PI, or negative LCB."""

    utility: str
    best: float
    kappa: float
    xi: float

    def value(self, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        """Acquisition at many points from their posterior mean and sd."""
        if self.utility == "ucb":
            return -(mean - self.kappa * sd)
        z = (self.best - self.xi - mean) / sd
        if self.utility == "poi":
            return log_ndtr(z)
        return _log_h(z) + np.log(sd)

    def value_grad(self, mean: np.ndarray, sd: np.ndarray, dmean: np.ndarray,
                   dsd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Acquisition and its gradient at many points, given the posterior's gradients there."""
        if self.utility == "ucb":
            return -(mean - self.kappa * sd), -dmean + self.kappa * dsd
        z = (self.best - self.xi - mean) / sd
        dz = (-dmean - z[:, None] * dsd) / sd[:, None]
        if self.utility == "poi":
            inv_mills = 1.0 / (erfcx(-z / np.sqrt(2.0)) * _SQRT_HALF_PI)  # phi(z) / Phi(z)
            return log_ndtr(z), inv_mills[:, None] * dz
        zc = np.clip(z, -1e3, 30.0)
        mills = erfcx(-zc / np.sqrt(2.0)) * _SQRT_HALF_PI  # Phi(z) / phi(z)
        ratio = mills / (1.0 + zc * mills)  # d log h / dz = Phi(z) / h(z)
        return _log_h(z) + np.log(sd), ratio[:, None] * dz + dsd / sd[:, None]


@dataclass
class LocalPenalty:
    """Local penalisation of pending points (González et al., 2016): the acquisition is multiplied by,
    for each pending point x_j, the probability that x lies outside the ball around x_j that f(x_j)'s
    excess over the best loss rules out, given a Lipschitz constant L of the posterior mean:
    Phi((L * d(x, x_j) - (mu_j - best)) / sd_j), d in lengthscale units. A pending point predicted good
    rules out a small ball (the batch can close in on the optimum together); one predicted poor, a large one."""

    centres: np.ndarray
    radius: np.ndarray  # (mu_j - best) / L
    width: np.ndarray  # sd_j / L
    rho: np.ndarray

    @classmethod
    def of(cls, post: Posterior, pending: np.ndarray, best: float, probe: np.ndarray) -> LocalPenalty:
        """The penalty of `pending` under `post`, L the largest gradient norm of the mean at `probe`."""
        mu, sd = post.predict(pending)
        dmean = post.predict_grad(probe)[2]
        lip = float(np.max(np.linalg.norm(dmean / np.sqrt(post.rho), axis=1)))
        lip = lip if lip > 1e-7 else 10.0  # a flat mean: GPyOpt's fallback
        return cls(pending, np.maximum(mu - best, 0.0) / lip, sd / lip, post.rho)

    def _z(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        diff = x[:, None, :] - self.centres[None, :, :]
        dist = np.sqrt(np.maximum((diff * diff) @ self.rho, 1e-24))
        return (dist - self.radius) / self.width, diff, dist

    def value(self, x: np.ndarray) -> np.ndarray:
        """Sum over pending points of log Phi(z_j) at each row of `x`."""
        return log_ndtr(self._z(x)[0]).sum(axis=1)

    def value_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z, diff, dist = self._z(x)
        inv_mills = 1.0 / (erfcx(-np.minimum(z, 30.0) / np.sqrt(2.0)) * _SQRT_HALF_PI)  # phi(z) / Phi(z)
        coef = inv_mills / (self.width * dist)
        return log_ndtr(z).sum(axis=1), np.einsum("kn,knd->kd", coef, diff) * self.rho


@dataclass
class Objective:
    """What the GP tuner maximises over encoded points: the acquisition under the posterior, plus the
    log penalty of pending points when there are any."""

    post: Posterior
    acq: Acquisition
    penalty: LocalPenalty | None = None

    def value(self, x: np.ndarray) -> np.ndarray:
        out = self.acq.value(*self.post.predict(x))
        return out if self.penalty is None else out + self.penalty.value(x)

    def value_grad(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value, grad = self.acq.value_grad(*self.post.predict_grad(x))
        if self.penalty is None:
            return value, grad
        pv, pg = self.penalty.value_grad(x)
        return value + pv, grad + pg
