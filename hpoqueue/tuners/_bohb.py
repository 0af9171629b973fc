"""BOHB (Falkner et al. 2018; NNI's bohb_advisor): Hyperband's brackets, new configurations from a KDE.

New configurations come from a TPE-like density ratio l(x)/g(x) fitted on the largest budget that has
at least ``min_points_in_model + 2`` results, or at random with probability ``random_fraction`` and
until such a budget exists. Densities are product kernels: Gaussian on continuous/integer columns of
the space's [0, 1] encoding, Aitchison-Aitken on categorical ones; bandwidths by the normal reference
rule, floored at ``min_bandwidth``; candidates are drawn around good points with widths multiplied by
``bandwidth_factor``, as in hpbandster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import truncnorm

from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode
from hpoqueue.tuners._hyperband import BracketTuner
from hpoqueue.tuners._spacecols import Columns


@dataclass(frozen=True)
class _Kde:
    """Product-kernel density over ordinal vectors (categoricals as category indices)."""

    data: np.ndarray
    bw: np.ndarray
    cats: np.ndarray  # number of categories per column, 0 for continuous

    @classmethod
    def fit(cls, data: np.ndarray, cats: np.ndarray, min_bandwidth: float) -> _Kde:
        n, d = data.shape
        bw = 1.06 * data.std(axis=0) * n ** (-1.0 / (4 + d))
        upper = np.where(cats > 0, (cats - 1) / np.maximum(cats, 1), np.inf)
        return cls(data, np.clip(bw, min_bandwidth, upper), cats)

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density at the rows of `x`."""
        diff = x[:, None, :] - self.data[None, :, :]
        cont = self.cats == 0
        logk = np.where(cont, -0.5 * (diff / self.bw) ** 2 - np.log(self.bw * np.sqrt(2 * np.pi)),
                        np.where(np.abs(diff) < 0.5, np.log1p(-self.bw),
                                 np.log(self.bw / np.maximum(self.cats - 1, 1))))
        return logsumexp(logk.sum(axis=2), axis=1) - np.log(len(self.data))


class BOHBTuner(BracketTuner):
    """BOHB with NNI's classArgs; budgets reach the trial as ``TRIAL_BUDGET``."""

    model_based = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, min_budget: float = 1, max_budget: float = 27, eta: int = 3,
                 min_points_in_model: int | None = None, top_n_percent: int = 15,
                 num_samples: int = 64, random_fraction: float = 1 / 3, bandwidth_factor: float = 3,
                 min_bandwidth: float = 1e-3) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed, max_budget=max_budget,
                         min_budget=min_budget, eta=eta, serial=False)
        if not 0 < top_n_percent < 100:
            raise ValueError(f"top_n_percent must be in (0, 100), not {top_n_percent!r}")
        if not 0 <= random_fraction <= 1:
            raise ValueError(f"random_fraction must be in [0, 1], not {random_fraction!r}")
        self.columns = Columns.of(space)
        self.min_points = (min_points_in_model if min_points_in_model is not None
                           else self.columns.n_dims + 1)
        if self.min_points < 1:
            raise ValueError(f"min_points_in_model must be >= 1, not {min_points_in_model!r}")
        self.top_n_percent = top_n_percent
        self.num_samples = num_samples
        self.random_fraction = random_fraction
        self.bandwidth_factor = bandwidth_factor
        self.min_bandwidth = min_bandwidth
        self._history: dict[float, list[tuple[np.ndarray, float]]] = {}

    def on_result(self, config: dict, budget: float, loss: float) -> None:
        vec = self.columns.to_ordinal(self.space.encode(config))
        self._history.setdefault(budget, []).append((vec, loss))

    def _models(self) -> tuple[_Kde, _Kde] | None:
        """Good and bad densities on the largest budget with enough results, or None."""
        for budget in sorted(self._history, reverse=True):
            obs = self._history[budget]
            if len(obs) < self.min_points + 2:
                continue
            order = np.argsort([loss for _, loss in obs], kind="stable")
            data = np.array([obs[i][0] for i in order])
            n_good = max(self.min_points, self.top_n_percent * len(obs) // 100)
            n_bad = max(self.min_points, (100 - self.top_n_percent) * len(obs) // 100)
            cats = self.columns.n_categories
            return (_Kde.fit(data[:n_good], cats, self.min_bandwidth),
                    _Kde.fit(data[n_good:n_good + n_bad], cats, self.min_bandwidth))
        return None

    def new_config(self, budget: float) -> dict:
        models = self._models()
        if models is None or self.rng.random() < self.random_fraction:
            return self.space.sample(self.rng)
        good, bad = models
        centres = good.data[self.rng.integers(len(good.data), size=self.num_samples)]
        bw = np.maximum(good.bw * self.bandwidth_factor, self.min_bandwidth)
        cont = good.cats == 0
        lo, hi = (0.0 - centres) / bw, (1.0 - centres) / bw  # Gaussians truncated to [0, 1]
        draws = truncnorm.rvs(lo, hi, loc=centres, scale=bw, random_state=self.rng)
        cand = np.where(cont, np.clip(draws, 0.0, 1.0), centres)
        resample = (~cont) & (self.rng.random(centres.shape) < bw)
        random_cat = np.floor(self.rng.random(centres.shape) * np.maximum(good.cats, 1))
        cand = np.where(resample, random_cat, cand)
        score = good.logpdf(cand) - bad.logpdf(cand)
        for i in np.argsort(-score):
            config = self.space.decode(self.columns.from_ordinal(cand[i]))
            if self.space.key(config) not in self.drawn:
                return config
        return self.space.sample(self.rng)
