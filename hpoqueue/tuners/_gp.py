"""Gaussian-process Bayesian optimisation (NNI's ``GP`` tuner names and classArgs) on numpy and scipy's compiled code.

The first ``cold_start_num`` configurations are a scrambled Sobol sequence. After that a Matérn 5/2
GP with one lengthscale per encoded column (MAP fit, warm-started, refitted less often as data grows)
models the standardised losses, and the next configuration maximises log EI (or LCB / log PI) over
random candidates plus perturbations of the best points, refined by L-BFGS-B on the numeric columns.
Pending trials are locally penalised (_gp_model.LocalPenalty): each rules out a ball around itself as
wide as its predicted excess over the best loss allows, so concurrent suggestions differ and a batch
can still close in on the optimum together. In the budget's last END_ROUNDS rounds (set_trials_left) they
are fantasised at their predicted mean instead (Kriging believer), so a batch closes in together; in the
very last round, with trials pending, the candidates are only small perturbations of the best points
(_last_round_candidates): nothing learnt after it can be used, so the last suggestions only refine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode, SequentialTuner
from hpoqueue.tuners._branches import pick_branch
from hpoqueue.tuners._budget import TrialBudget
from hpoqueue.tuners._dedup import SeenConfigs
from hpoqueue.tuners._gp_model import Acquisition, LocalPenalty, Objective, Posterior, default_raw, fit_kernel
from hpoqueue.tuners._lbfgsb import minimize_lbfgsb
from hpoqueue.tuners._sobol import ScrambledSobol
from hpoqueue.tuners._spacecols import Columns

#: Observations used to fit kernel parameters (the most recent of the model's points).
FIT_CAP = 200
#: Observations the posterior is built on, at most: past it, the best half by loss and the rest spread evenly
#: over the history. A fit is then O(MODEL_CAP^3) whatever the history (exact on 10,000 trials: O(10^12)).
MODEL_CAP = 500
#: Below this many observations the kernel is refitted on every new one; above, every n // 20.
REFIT_ALWAYS = 60
#: Candidates drawn around each of the best points, and how many best points.
LOCAL_CANDIDATES, LOCAL_CENTRES = 64, 5
#: Random candidates are capped at CANDIDATE_BUDGET / n (scoring costs O(candidates * n)), min MIN_CANDIDATES.
CANDIDATE_BUDGET, MIN_CANDIDATES = 120_000, 500
#: L-BFGS-B iterations for the joint refinement of the best candidates.
REFINE_ITERATIONS = 100
#: Best-scoring candidates that are rounded to real configurations and scored again, beside the refined.
SNAPPED = 20
#: Candidates whose largest gradient of the posterior mean estimates its Lipschitz constant (LocalPenalty).
LIPSCHITZ_PROBES = 500
#: In the budget's last END_ROUNDS rounds (a round: the trials pending and the one being proposed; see
#: set_trials_left) pending trials are fantasised at their predicted mean (Kriging believer) instead of
#: penalised: the batch closes in on the optimum rather than spreading out (round four). Two, not three
#: (round eight): the round before them still finds better basins under the penalty (levy6, nested, branin).
END_ROUNDS = 2
#: In the budget's very last round, with trials pending (see _last_round_candidates): how many Gaussian
#: perturbations of how many best points are the candidates, and the range of their scales (log-uniform, in
#: the unit cube; 5 sigma of the largest is 0.15).
LAST_ROUND_CANDIDATES, LAST_ROUND_CENTRES = 256, 5
LAST_ROUND_SCALES = (0.001, 0.03)


class GPTuner(SequentialTuner):
    """GP-BO over the space's [0, 1] encoding; never repeats a configuration (exhausts finite spaces)."""

    reads_curves = False
    model_based = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, utility: str = "ei", kappa: float = 5.0, xi: float = 0.0,
                 nu: float = 2.5, cold_start_num: int = 10, selection_num_warm_up: int = 2000,
                 selection_num_starting_points: int = 5) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if utility not in ("ei", "ucb", "poi"):
            raise ValueError(f"utility must be 'ei', 'ucb' or 'poi', not {utility!r}")
        if nu != 2.5:
            raise ValueError(f"nu={nu!r} is not supported: hpoqueue's GP uses the Matérn 5/2 kernel "
                             "(nu=2.5)")
        if cold_start_num < 1 or selection_num_warm_up < 1 or selection_num_starting_points < 0:
            raise ValueError("cold_start_num and selection_num_warm_up must be >= 1 and "
                             "selection_num_starting_points >= 0")
        self.utility, self.kappa, self.xi = utility, kappa, xi
        self.cold_start_num = cold_start_num
        self.n_candidates = selection_num_warm_up
        self.n_starts = selection_num_starting_points
        self.columns = Columns.of(space)
        self.rng = np.random.default_rng(seed)
        self._sobol = ScrambledSobol(self.columns.n_dims, self.rng)
        self._seen = SeenConfigs(space)
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._pending: dict[str, np.ndarray] = {}
        self._raw: np.ndarray | None = None
        self._fitted_at = 0
        self._budget = TrialBudget()

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted

    def mark_pending(self, params: dict) -> None:
        self._seen.add(params)
        self._pending[self.space.key(params)] = self.space.encode(params)

    def set_trials_left(self, n: int | None) -> None:
        self._budget.tell(n, len(self._seen))

    def observe(self, result: TrialResult) -> None:
        x = self._pending.pop(self.space.key(result.params), None)
        if result.value is None or not np.isfinite(result.value):
            return
        self._x.append(self.space.encode(result.params) if x is None else x)
        self._y.append(self.loss(float(result.value)))

    def propose(self) -> dict[str, Any] | None:
        if self._seen.exhausted:
            return None
        if len(self._seen) < self.cold_start_num or len(self._y) < 2:
            u = self._sobol.random(1)[0]
            params = self.space.decode(self.columns.from_ordinal(
                np.where(self.columns.n_categories > 0, np.floor(u * self.columns.n_categories), u)))
            return params if params not in self._seen else self._seen.random_unseen(self.rng)
        # one BLAS thread: GP matrices are small, and threads fighting over them (other trials' processes
        # on the same cores) made a suggestion ten times slower in CPU time
        with threadpool_limits(1):
            return self._model_next()

    def _posterior(self) -> tuple[Posterior, float]:
        """The GP on the observed (standardised) losses, and the best of them."""
        x, y = np.array(self._x), np.array(self._y)
        y = (y - y.mean()) / max(y.std(), 1e-12)
        n = len(y)
        if n > MODEL_CAP:
            keep = _model_points(y)
            x, y = x[keep], y[keep]
        refit_every = 1 if n <= REFIT_ALWAYS else n // 20
        if self._raw is None or n - self._fitted_at >= refit_every:
            starts = [default_raw(x.shape[1])] + ([self._raw] if self._raw is not None else [])
            self._raw = fit_kernel(x[-FIT_CAP:], y[-FIT_CAP:], starts)
            self._fitted_at = n
        return Posterior(x, y, self._raw), float(y.min())

    def _model_next(self) -> dict[str, Any] | None:
        post, best = self._posterior()
        acq = Acquisition(self.utility, best, self.kappa, self.xi)
        # the very last round (implies the believer's END_ROUNDS): refine the best points, do not explore
        last = bool(self._pending) and self._budget.last_rounds(len(self._seen), len(self._pending), 1)
        if last:
            cand = self._last_round_candidates()
        else:
            n_random = min(self.n_candidates, max(MIN_CANDIDATES, CANDIDATE_BUDGET // len(post.y)))
            cand = np.vstack([self.columns.random(self.rng, n_random), self._local_candidates()])
        penalty = None
        if self._pending:
            pending = np.array(list(self._pending.values()))
            if self._budget.last_rounds(len(self._seen), len(self._pending), END_ROUNDS):
                # the believer: each pending trial as if it returned its predicted mean
                post = Posterior(np.vstack([post.x, pending]), np.concatenate([post.y, post.predict(pending)[0]]),
                                 post.raw)
            else:
                penalty = LocalPenalty.of(post, pending, best, cand[:LIPSCHITZ_PROBES])
        obj = Objective(post, acq, penalty)
        picks = {} if last else self._pick_branches()  # last round: each candidate keeps its centre's branch
        for p, option in picks.items():  # every candidate takes the sampled branch (see _branches.py)
            s, w = self.columns.starts[p], self.columns.widths[p]
            cand[:, s:s + w] = np.eye(w)[option]
        cand = self.columns.canonical(cand)
        scores = obj.value(cand)
        order = np.argsort(-scores)
        if self.n_starts:  # L-BFGS from the best candidates and from the incumbent (Optuna's warm start)
            incumbent = np.array(self._x)[int(np.argmin(self._y))]
            on_branch = all(np.argmax(incumbent[self.columns.starts[p]:self.columns.starts[p] + self.columns.widths[p]])
                            == option for p, option in picks.items())
            starts = [cand[order[:self.n_starts]]] + ([incumbent[None]] if on_branch else [])
            refined = self._refine(obj, np.vstack(starts))
        else:
            refined = []
        # integer, q and choice columns are rounded by decode: score the configurations really proposed
        finalists = [self.space.decode(x) for x in [*refined, *cand[order[:SNAPPED]]]]
        finalists = [params for params in finalists if params not in self._seen]
        if finalists:
            snapped = np.array([self.space.encode(params) for params in finalists])
            return finalists[int(np.argmax(obj.value(snapped)))]
        for x in cand[order[SNAPPED:]]:
            params = self.space.decode(x)
            if params not in self._seen:
                return params
        return self._seen.random_unseen(self.rng)

    def _pick_branches(self) -> dict[int, int]:
        """For each top-level nested choice, the option every candidate takes this time (Thompson sampling
        on each branch's finished trials: one-hot columns alone left the GP on the branch that is good on
        average, 9% of trials on the best branch of the benchmark's nested problem)."""
        x, y = np.array(self._x), np.array(self._y)
        nested = {link[0] for link in self.columns.parents if link is not None}
        picks = {}
        for p in sorted(nested):
            if self.columns.parents[p] is None:
                s, w = self.columns.starts[p], self.columns.widths[p]
                picks[p] = pick_branch(self.rng, np.argmax(x[:, s:s + w], axis=1), y, int(w))
        return picks

    def _local_candidates(self) -> np.ndarray:
        """Gaussian perturbations (numeric columns only) of the best observed points, and of the best
        point of every option of every choice: each branch of a nested space is refined where it is
        best, not only the branch the overall best points happen to share."""
        x, y = np.array(self._x), np.array(self._y)
        best = list(np.argsort(y)[:LOCAL_CENTRES])
        for s, c in zip(self.columns.starts, self.columns.n_categories, strict=True):
            for option in range(c):
                rows = np.flatnonzero(x[:, s + option] == 1.0)
                if len(rows):
                    best.append(int(rows[np.argmin(y[rows])]))
        centres = np.repeat(x[sorted(set(best))], LOCAL_CANDIDATES, axis=0)
        return self._perturb(centres, self.rng.choice([0.01, 0.05, 0.2], size=(len(centres), 1)))

    def _last_round_candidates(self) -> np.ndarray:
        """The candidates of the budget's very last round with trials pending: LAST_ROUND_CANDIDATES Gaussian
        perturbations (numeric columns only; choice and branch columns kept as the centre's) of the
        LAST_ROUND_CENTRES best observed points, in turn, each with a scale log-uniform in LAST_ROUND_SCALES.
        The usual pipeline then scores them, runs L-BFGS-B from the best of them and the incumbent, and
        snaps, as in any round.

        Why: no result of this round can steer a later suggestion, so exploring is wasted, yet the usual
        random and wide local candidates still sent some of the last batch far from the best points. At 16
        in flight, 30 seeds (benchmarks/results/tuners.md, round five) this was worse on none of 8 problems
        and better (paired) on nested, levy6 and styblinski5. Scoring these perturbations alone, without the
        L-BFGS-B ascent and snapping (615318c), made hartmann6 2x worse. Sequential GP never gets here
        (nothing pending)."""
        x, y = np.array(self._x), np.array(self._y)
        centres = x[np.argsort(y)[:LAST_ROUND_CENTRES]]
        centres = centres[np.arange(LAST_ROUND_CANDIDATES) % len(centres)]
        low, high = np.log(LAST_ROUND_SCALES)
        return self._perturb(centres, np.exp(self.rng.uniform(low, high, size=(len(centres), 1))))

    def _perturb(self, centres: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Each row of ``centres`` moved by Gaussian noise of its row's ``scale`` in the numeric columns,
        kept in the unit cube (choice and branch columns unchanged)."""
        noise = self.rng.normal(size=centres.shape) * scale * self.columns.numeric_mask
        return np.clip(centres + noise, 0.0, 1.0)

    def _refine(self, obj: Objective, x0: np.ndarray) -> list[np.ndarray]:
        """L-BFGS-B on the numeric columns of the rows of `x0` at once (their acquisitions summed, so
        one vectorised gradient serves every start); best first. One-hot columns stay fixed, and so do
        those of parameters a row does not use (a nested branch it did not take)."""
        mask = self.columns.numeric_mask
        x = x0.copy()
        used = np.repeat(self.columns.active(x0), self.columns.widths, axis=1)[:, mask]
        if mask.any():
            def negacq(z: np.ndarray) -> tuple[float, np.ndarray]:
                x[:, mask] = z.reshape(len(x), -1)
                value, grad = obj.value_grad(x)
                return -float(value.sum()), -(grad[:, mask] * used).ravel()

            size = len(x) * int(mask.sum())
            z, _ = minimize_lbfgsb(negacq, x0[:, mask].ravel(), np.zeros(size), np.ones(size),
                                   maxiter=REFINE_ITERATIONS, ftol=1e-15, gtol=1e-9)
            x[:, mask] = z.reshape(len(x), -1)
        return list(x[np.argsort(-obj.value(x))])


def _model_points(y: np.ndarray) -> np.ndarray:
    """Indices (in history order) of the MODEL_CAP observations the posterior keeps of `y`: the best half,
    where the search is decided, and the others evenly spread, so every region tried stays known."""
    order = np.argsort(y, kind="stable")
    best, rest = order[:MODEL_CAP // 2], np.sort(order[MODEL_CAP // 2:])
    spread = rest[np.linspace(0, len(rest) - 1, MODEL_CAP - MODEL_CAP // 2).round().astype(int)]
    return np.sort(np.concatenate([best, spread]))
