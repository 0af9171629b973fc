"""TPE, hpoqueue's own (numpy/scipy): multivariate Parzen estimators, grouped by nested-choice branch.

After ``n_startup_jobs`` (10) scrambled-Sobol configurations, the observations are split by loss into
the best ``min(ceil(gamma * n), 25)`` (gamma 0.2) ("below") and the rest ("above"); each side becomes a mixture of
product kernels over the parameters jointly (see _parzen.py), older trials weighing less once there
are more than 25. ``n_ei_candidates`` (32) draws from the below mixture are scored by log l(x) - log g(x)
and the best new one is proposed. A nested choice is a tree: the parameters active together (the
top level, or one option's own) form a group, modelled only on the trials where that branch ran (its
own split into below and above). The option of a nested choice is picked by Thompson sampling over its
branches (_branches.py): ranking branches by the global split starves a branch best in a narrow region.
Pending trials (handed out, no result yet) join the "above" side (``constant_liar_type='worst'``,
the default) or count at the best / mean loss, so concurrent suggestions spread out; while p trials
are pending, gamma shrinks to gamma / (1 + p / PENDING_SCALE), keeping the below side on the very best
trials (with 15 pending and the full gamma, the liars crowd the good region and suggestions scatter).
A share of suggestions (LOCAL_SHARE, a quarter; LOCAL_SHARE_PENDING, half, while trials are pending) draw
their candidates from the best trial's kernel alone, LOCAL_WIDTH (0.2) times as wide (a choice drawn from
the kernel's smoothed one-hot, so its other options stay reachable), instead of from l(x), and score them
the same way: local search around the incumbent. The few kernels of a shrunk below
side are wide, so without it a batch scatters over the good region and none refines the best trial; the
pending trials (in g) keep the local suggestions of a batch apart (benchmarks/results/tuners.md, round three).
Told how many trials the experiment may still create (set_trials_left: maxTrialNumber less those created),
every suggestion searches locally once at most END_ROUNDS rounds of the budget are left, a round being
the pending trials and the one proposed (round four). There the local width narrows to half the larger
distance from the best trial to the next two (the second and third best) when that is less: three good
trials close together bracket one basin's minimum, to be refined; spread out (several basins, a rugged
surface) they leave the width as it is (round six). In the end game the first candidate of a suggestion is the
minimiser of a quadratic fitted to the finished trials nearest the best one (_quadfit.py; separable past 4
numeric columns), unless a pending trial is already near it: local draws around one incumbent refine it
slowly (a batch's, made without each other's results, most of all), and a smooth minimum (or the bowl under
a rugged surface's ripples) is where their results together point (round eight).

``implementation='hyperopt'`` gives hyperopt's TPE instead, exactly as NNI runs it (see _hyperopt.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode, SequentialTuner
from hpoqueue.tuners._branches import pick_branch
from hpoqueue.tuners._budget import TrialBudget
from hpoqueue.tuners._dedup import SeenConfigs
from hpoqueue.tuners._parzen import ColumnKind, Parzen, snap
from hpoqueue.tuners._quadfit import quad_min
from hpoqueue.tuners._sobol import ScrambledSobol
from hpoqueue.tuners._spacecols import Columns

Implementation = Literal["hpoqueue", "hyperopt"]
LiarType = Literal["best", "worst", "mean"]
#: Most trials in the "below" side, and the number of most recent trials that keep full weight.
BELOW_CAP = 25
RECENT = 25
#: Past this many trials the model is built on a window of them: the MODEL_BEST best by loss, the
#: MODEL_RECENT newest (pending ones among them) and the pending ones (the older rest weighs little, see
#: _recency_weights); a suggestion then stops growing with the history (issue #21: 290 ms at 10,000 trials)
MODEL_BEST, MODEL_RECENT = 200, 800
#: How many pending trials halve gamma (see the module docstring); chosen at concurrency 4 and 16.
PENDING_SCALE = 10.0
#: Share of suggestions whose candidates are drawn around the best trial (its below kernel, LOCAL_WIDTH
#: times as wide) instead of from l(x): without, and with trials pending (see the module docstring).
LOCAL_SHARE, LOCAL_SHARE_PENDING, LOCAL_WIDTH = 0.25, 0.5, 0.2
#: In the budget's last END_ROUNDS rounds (a round: the trials pending and the one being proposed; see
#: set_trials_left) every suggestion searches around the best trial: too few rounds are left to profit from
#: exploring (at 16 in flight: the last 64 of 100; sequentially: the last 4). There the local width is at most
#: half the best trial's distance to the second or third best, whichever is farther (_rival_scale).
END_ROUNDS = 4
#: In the end game the first candidate is the minimiser of a quadratic fitted to the trials near the best one
#: (_quad_point), unless a pending trial is within QUAD_GAP local widths of it.
QUAD_GAP = 0.1
_Group = tuple[str, int] | None  # (choice path, option index) of a nested branch; None: the top level


class ParzenTPE(SequentialTuner):
    """Multivariate, branch-grouped TPE over the space's unit encoding; never repeats a configuration."""

    reads_curves = False
    model_based = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, n_startup_jobs: int = 10, n_ei_candidates: int = 32,
                 gamma: float = 0.2, constant_liar_type: LiarType = "worst") -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if n_startup_jobs < 0 or n_ei_candidates < 1 or not 0 < gamma < 1:
            raise ValueError(f"need n_startup_jobs >= 0, n_ei_candidates >= 1 and 0 < gamma < 1; got "
                             f"{n_startup_jobs}, {n_ei_candidates}, {gamma}")
        if constant_liar_type not in ("best", "worst", "mean"):
            raise ValueError(f"constant_liar_type must be 'best', 'worst' or 'mean', "
                             f"not {constant_liar_type!r}")
        self.n_startup_jobs, self.n_ei_candidates, self.gamma = n_startup_jobs, n_ei_candidates, gamma
        self.constant_liar_type = constant_liar_type
        self.columns = Columns.of(space)
        self.rng = np.random.default_rng(seed)
        self._sobol = ScrambledSobol(max(self.columns.n_dims, 1), self.rng)
        self._seen = SeenConfigs(space)
        dims = space.dims
        self._kinds = [ColumnKind(n_categories=d.n_choices) if d.kind == "categorical" else
                       ColumnKind(bins=int(d.high - d.low)  # type: ignore[operator]  # integers are bounded
                                  if d.kind == "integer" else 0) for d in dims]
        index = {d.path: i for i, d in enumerate(dims)}
        self._parent = [(index[d.parent], d.parent_option) if d.parent is not None else None for d in dims]
        self._groups: dict[_Group, list[int]] = {}
        for i, d in enumerate(dims):
            key = (d.parent, d.parent_option) if d.parent is not None else None
            self._groups.setdefault(key, []).append(i)  # type: ignore[arg-type]
        self._children = {(index[p], o): key for key in self._groups if key is not None
                          for p, o in [key]}
        self._rows: list[np.ndarray] = []  # one value per dim, every trial handed out, in order
        self._losses: list[float | None] = []  # None while pending or failed
        self._failed: set[int] = set()
        self._row_of: dict[str, int] = {}  # the pending trials' rows
        self._budget = TrialBudget()

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted

    def mark_pending(self, params: dict) -> None:
        if not self._seen.add(params):
            return
        self._row_of[self.space.key(params)] = len(self._rows)
        self._rows.append(self.columns.to_ordinal(self.space.encode(params)))
        self._losses.append(None)

    def set_trials_left(self, n: int | None) -> None:
        self._budget.tell(n, len(self._rows))

    def observe(self, result: TrialResult) -> None:
        row = self._row_of.pop(self.space.key(result.params), None)
        if row is None:
            return
        if result.value is None or not math.isfinite(float(result.value)):
            self._failed.add(row)  # failed trials teach nothing: they leave the model
        else:
            self._losses[row] = self.loss(float(result.value))

    def propose(self) -> dict[str, Any] | None:
        if self._seen.exhausted:
            return None
        all_losses = np.array(self._losses, dtype=float)  # None (pending, failed): NaN
        n_done = int(np.count_nonzero(~np.isnan(all_losses)))
        if len(self._seen) < self.n_startup_jobs or n_done == 0 or not self.columns.n_dims:
            return self._startup()
        keep = _model_window(all_losses, self._failed)
        rows, losses = np.array([self._rows[i] for i in keep]), all_losses[keep]
        candidates = self._sample_tree(rows, self._lied(losses))
        for v in candidates:
            params = self.space.decode(self.columns.from_ordinal(v))
            if params not in self._seen:
                return params
        return self._seen.random_unseen(self.rng)

    def _startup(self) -> dict[str, Any] | None:
        """The next scrambled-Sobol point (categorical columns as option indices), if unseen."""
        u = self._sobol.random(1)[0][:self.columns.n_dims]
        cats = self.columns.n_categories
        params = self.space.decode(self.columns.from_ordinal(np.where(cats > 0, np.floor(u * cats), u)))
        return params if params not in self._seen else self._seen.random_unseen(self.rng)

    def _lied(self, losses: np.ndarray) -> np.ndarray:
        """Losses with pending trials (NaN) replaced by the liar's value (+inf: the worst of all)."""
        done = losses[~np.isnan(losses)]
        lie = {"best": done.min(), "worst": np.inf, "mean": done.mean()}[self.constant_liar_type]
        return np.where(np.isnan(losses), lie, losses)

    def _sample_tree(self, rows: np.ndarray, losses: np.ndarray) -> Iterator[np.ndarray]:
        """Candidate configurations (one value per dim), best first: the top level's candidates in order
        of their score, each completed (when asked for) by the best choice within every branch it enters."""
        for v in self._sample_group(None, rows, losses):
            full = np.full(len(self._kinds), 0.5)
            full[self._groups[None]] = v
            self._fill_children(None, full, rows, losses)
            yield full

    def _fill_children(self, group: _Group, full: np.ndarray, rows: np.ndarray, losses: np.ndarray) -> None:
        for i in self._groups[group]:
            child = self._children.get((i, int(full[i]))) if self._kinds[i].n_categories else None
            if child is None:
                continue
            active = self._active(rows, child)
            full[self._groups[child]] = self._sample_group(child, rows[active], losses[active])[0]
            self._fill_children(child, full, rows, losses)

    def _active(self, rows: np.ndarray, group: _Group) -> np.ndarray:
        """Rows where `group`'s branch was taken (its choice active and set to its option)."""
        mask = np.ones(len(rows), dtype=bool)
        cols = self._groups[group]
        link = self._parent[cols[0]]
        while link is not None:
            col, option = link
            mask &= rows[:, col] == option
            link = self._parent[col]
        return mask

    def _sample_group(self, group: _Group, rows: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """`n_ei_candidates` values of the group's columns, sorted by log l(x) - log g(x), best first."""
        cols = self._groups[group]
        kinds = [self._kinds[i] for i in cols]
        obs = rows[:, cols]
        done = np.isfinite(losses)
        n_done = int(done.sum())
        gamma = self.gamma / (1.0 + (len(rows) - n_done) / PENDING_SCALE)
        n_below = min(math.ceil(gamma * n_done), BELOW_CAP, n_done)
        order = np.argsort(losses, kind="stable")
        below = np.zeros(len(rows), dtype=bool)
        below[order[:n_below]] = True
        weights = _recency_weights(len(rows))
        lower = Parzen(obs[below], weights[below], kinds)
        upper = Parzen(obs[~below], weights[~below], kinds)
        share = LOCAL_SHARE_PENDING if n_done < len(rows) else LOCAL_SHARE
        end = self._budget.last_rounds(len(self._rows), len(self._row_of), END_ROUNDS)
        if end:
            share = 1.0
        # a group of choices only draws from l(x): locally it would mostly draw the best trial's options again
        numeric = [j for j, kind in enumerate(kinds) if not kind.n_categories]
        model = None
        if n_below and numeric and self.rng.random() < share:  # around the best trial, its kernel narrowed
            best = int(np.count_nonzero(below[:order[0]]))  # its index among the below kernels
            width = LOCAL_WIDTH
            if end:
                kernel = np.array([lower.sigmas[j][best] for j in numeric])  # its numeric columns' widths
                if n_done > 2:
                    width *= _rival_scale(obs[order[:3]][:, numeric], LOCAL_WIDTH * kernel)
                model = _quad_point(obs, losses, int(order[0]), width * kernel, numeric, kinds)
            cand = lower.sample_near(self.rng, best, self.n_ei_candidates, width)
        else:
            cand = lower.sample(self.rng, self.n_ei_candidates)  # both draw on the integer bins' centres
        score = lower.log_pdf(cand) - upper.log_pdf(cand)
        cand = cand[np.argsort(-score, kind="stable")]
        if model is not None:
            cand = np.vstack([model, cand])
        for j, i in enumerate(cols):
            if any((i, o) in self._children for o in range(kinds[j].n_categories)):
                cand[:, j] = pick_branch(self.rng, obs[done, j], losses[done], kinds[j].n_categories)
        return cand


def _quad_point(obs: np.ndarray, losses: np.ndarray, best: int, widths: np.ndarray, num: list[int],
                kinds: list[ColumnKind]) -> np.ndarray | None:
    """The best trial (row `best`) with its numeric columns (`num`) moved to the minimiser of a quadratic fitted
    to the finished trials that share its choices (quad_min; distances in the local `widths`), or None: no fit, a
    pending trial (loss +inf) already within QUAD_GAP local widths of it (root mean square; the one placed
    there before this result came in, usually), or a finished trial at it (a nested branch's group takes
    its first candidate as it is, unseen or not)."""
    cat = [j for j, kind in enumerate(kinds) if kind.n_categories]
    done = np.isfinite(losses)
    same = done & np.all(obs[:, cat] == obs[best, cat], axis=1)
    x = quad_min(obs[np.ix_(same, num)], losses[same], obs[best, num], widths)
    if x is None:
        return None
    point = obs[best].copy()
    for i, j in enumerate(num):
        point[j] = snap(np.clip(x[i:i + 1], 0.0, 1.0), kinds[j])[0]
    near = np.sqrt((((obs[np.ix_(~done, num)] - point[num]) / widths) ** 2).mean(axis=1))
    return None if np.any(near < QUAD_GAP) or np.any(np.all(obs[done] == point, axis=1)) else point


def _rival_scale(top: np.ndarray, width: np.ndarray) -> float:
    """The end game's factor on the local width: min(1, d / 2), d the larger distance from the best trial
    (top[0], its numeric columns) to the second and third best (top[1:]), each the root mean square in local
    widths (`width`: LOCAL_WIDTH times the best's below kernel); 1 when the three share their numeric values
    (no distance to go by)."""
    d = float(np.sqrt(np.mean(((top[1:] - top[0]) / width) ** 2, axis=1)).max())
    return min(1.0, d / 2) if d > 0 else 1.0


def _model_window(losses: np.ndarray, failed: set[int]) -> np.ndarray:
    """Indices, in order, of the trials the model is built on: all but the failed ones, or past
    MODEL_BEST + MODEL_RECENT of them the best, the newest and the pending (NaN) ones."""
    usable = np.ones(len(losses), dtype=bool)
    usable[list(failed)] = False
    index = np.flatnonzero(usable)
    if len(index) <= MODEL_BEST + MODEL_RECENT:
        return index
    done = index[~np.isnan(losses[index])]
    best = done[np.argsort(losses[done], kind="stable")[:MODEL_BEST]]
    pending = index[np.isnan(losses[index])]
    return np.union1d(np.union1d(best, index[-MODEL_RECENT:]), pending)


def _recency_weights(n: int) -> np.ndarray:
    """Weight of each of `n` trials in order: 1 for the RECENT newest, a ramp up from 1/n before them."""
    if n <= RECENT:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - RECENT), np.ones(RECENT)])


class TPETuner(BaseTuner):
    """TPE: hpoqueue's multivariate TPE (ParzenTPE), or ``implementation='hyperopt'`` for hyperopt's exact
    TPE as NNI runs it (its defaults: 20 random start-up trials, gamma 0.25 on sqrt(n), the 'best'
    liar, randint as unordered categories)."""

    reads_curves = False
    model_based = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, implementation: Implementation = "hpoqueue",
                 n_startup_jobs: int | None = None, n_ei_candidates: int | None = None, gamma: float | None = None,
                 constant_liar_type: LiarType | None = None) -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        given: dict[str, Any] = {k: v for k, v in {"n_startup_jobs": n_startup_jobs, "n_ei_candidates": n_ei_candidates,
                                   "gamma": gamma, "constant_liar_type": constant_liar_type}.items()
                 if v is not None}  # unset: each implementation's own default
        if implementation == "hpoqueue":
            self._impl: SequentialTuner = ParzenTPE(space, optimize_mode=optimize_mode, seed=seed, **given)
        elif implementation == "hyperopt":
            from hpoqueue.tuners._hyperopt import HyperoptTPETuner

            self._impl = HyperoptTPETuner(space, optimize_mode=optimize_mode, seed=seed, **given)
        else:
            raise ValueError(f"implementation must be 'hpoqueue' or 'hyperopt', not {implementation!r}")
        self.implementation = implementation

    def suggest(self, n: int) -> list[Suggestion]:
        return self._impl.suggest(n)

    def observe(self, result: TrialResult) -> None:
        self._impl.observe(result)

    def mark_pending(self, params: dict) -> None:
        self._impl.mark_pending(params)

    def set_trials_left(self, n: int | None) -> None:
        self._impl.set_trials_left(n)

    def rebuild(self, trials: Sequence[TrialResult]) -> None:
        self._impl.rebuild(trials)

    @property
    def exhausted(self) -> bool:
        return self._impl.exhausted
