"""TPE and Anneal from hyperopt, driven ask/tell style with a constant liar for pending trials.

hyperopt's ``suggest(new_ids, domain, trials, seed)`` reads past trials from a ``Trials`` object; this
module keeps one in step with the scheduler: a doc per handed-out configuration, whose loss is the
observed one once finished and a constant "lie" (best, worst or mean observed loss) while pending, so
concurrent suggestions spread out (NNI's ``parallel_optimize``). Failed trials leave the model, as in
NNI, which never reports them to hyperopt. Anneal sees integers as ordered (a quniform on a line);
hyperopt's TPE here is NNI's exactly, randint as unordered categories included.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from hyperopt import JOB_STATE_DONE, JOB_STATE_ERROR, STATUS_NEW, STATUS_OK, Trials, anneal, pyll, rand, tpe
from hyperopt.base import Domain, miscs_update_idxs_vals

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import OptimizeMode, SequentialTuner
from hpoqueue.tuners._dedup import SeenConfigs
from hpoqueue.tuners._hyperopt_space import hyperopt_expr, params_from_vals, vals_from_params

LiarType = Literal["best", "worst", "mean"]
#: hyperopt proposals tried before falling back to a random unseen configuration.
PROPOSAL_TRIES = 3
#: observed trials Anneal's model is given per parameter, the best by loss of those that have it (beside every
#: pending one): it starts each parameter from one of the first few by rank (a geometric draw, mean 2: rank 100
#: or later has odds of 2^-100), so the window changes no proposal, and a suggestion stops growing with the history
ANNEAL_WINDOW = 100
_SEED_LIMIT = 2**31 - 1


class HyperoptTuner(SequentialTuner):
    """Shared ask/tell driver; subclasses name hyperopt's suggest function and its keyword arguments."""

    reads_curves = False
    model_based = True
    #: NNI's randint as hyperopt's ordered quniform (True) or as its unordered hp.randint (False, NNI's)
    ordered_integers = True

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, constant_liar_type: LiarType = "best") -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed)
        if constant_liar_type not in ("best", "worst", "mean"):
            raise ValueError(f"constant_liar_type must be 'best', 'worst' or 'mean', "
                             f"not {constant_liar_type!r}")
        self.constant_liar_type = constant_liar_type
        self._rng = np.random.default_rng(seed)
        self._seen = SeenConfigs(space)
        # hyperopt cannot build a Domain for an empty space; its one configuration needs no model.
        expr = hyperopt_expr(space.raw, ordered=self.ordered_integers)
        self._domain = Domain(_never_called, expr) if space.raw else None
        self._labels = list(self._domain.params) if self._domain else []
        self._trials = Trials()
        self._pending: dict[str, dict[str, Any]] = {}
        self._losses: list[float] = []
        self._next_tid = 0

    def _hyperopt_suggest(self, domain: Domain, tid: int, seed: int) -> dict[str, Any]:
        """hyperopt's proposal (a trial doc) for new trial id `tid`, from the trials so far."""
        raise NotImplementedError

    def propose(self) -> dict[str, Any] | None:
        """hyperopt's next configuration if it is new, else a random unseen one (None: exhausted)."""
        if self._seen.exhausted:
            return None
        if self._domain is not None:
            self._tell_lies()
            for _ in range(PROPOSAL_TRIES):
                seed = int(self._rng.integers(_SEED_LIMIT))
                doc = self._hyperopt_suggest(self._domain, self._next_tid, seed)
                params = params_from_vals(self.space, doc["misc"]["vals"], ordered=self.ordered_integers)
                if params not in self._seen:
                    return params
        return self._seen.random_unseen(self._rng)

    def _tell_lies(self) -> None:
        """Give every pending doc the constant-liar loss (none yet: hyperopt reads it as infinite)."""
        if self._losses:
            picks: dict[str, Callable[[list[float]], Any]] = {"best": min, "worst": max, "mean": np.mean}
            lie = picks[self.constant_liar_type](self._losses)
            result = {"loss": float(lie), "status": STATUS_OK}
        else:
            result = {"status": STATUS_NEW}
        for doc in self._pending.values():
            doc["result"] = dict(result)

    def mark_pending(self, params: dict) -> None:
        if not self._seen.add(params) or self._domain is None:
            return
        tid, self._next_tid = self._next_tid, self._next_tid + 1
        vals = vals_from_params(self.space, params, ordered=self.ordered_integers)
        misc = {"tid": tid, "cmd": None, "workdir": None,
                "idxs": {label: [tid] if label in vals else [] for label in self._labels},
                "vals": {label: [vals[label]] if label in vals else [] for label in self._labels}}
        doc = self._trials.new_trial_docs([tid], [None], [{"status": STATUS_NEW}], [misc])[0]
        doc["state"] = JOB_STATE_DONE
        # The unchecked insert stores `doc` itself (insert_trial_docs stores a copy), so the liar loss
        # and the final result can be written into it in place.
        self._trials._insert_trial_docs([doc])
        self._pending[self.space.key(params)] = doc

    def observe(self, result: TrialResult) -> None:
        doc = self._pending.pop(self.space.key(result.params), None)
        if doc is None:
            return
        if result.value is None:
            doc["state"] = JOB_STATE_ERROR  # Trials.refresh drops it: failed trials teach nothing
        else:
            loss = self.loss(float(result.value))
            doc["result"] = {"loss": loss, "status": STATUS_OK}
            self._losses.append(loss)
        # no Trials.refresh() here or in _tell_lies (O(history) each: a resume's replay was quadratic); the
        # suggest functions that read self._trials refresh it first

    @property
    def exhausted(self) -> bool:
        return self._seen.exhausted


def _never_called(params: dict) -> float:
    """The objective hyperopt's Domain wants; trials run elsewhere, so it is never evaluated."""
    raise RuntimeError("hpoqueue drives hyperopt ask/tell; the Domain objective is never called")


class HyperoptTPETuner(HyperoptTuner):
    """Tree-structured Parzen Estimator (hyperopt's ``tpe.suggest``), random for the first
    ``n_startup_jobs`` trials; NNI's classArgs and defaults (``TPE`` with ``implementation: hyperopt``)."""

    ordered_integers = False

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, n_startup_jobs: int = 20, n_ei_candidates: int = 24,
                 gamma: float = 0.25, constant_liar_type: LiarType = "best") -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed, constant_liar_type=constant_liar_type)
        if n_startup_jobs < 0 or n_ei_candidates < 1 or not 0 < gamma < 1:
            raise ValueError(f"need n_startup_jobs >= 0, n_ei_candidates >= 1 and 0 < gamma < 1; got "
                             f"{n_startup_jobs}, {n_ei_candidates}, {gamma}")
        self.n_startup_jobs = n_startup_jobs
        self.n_ei_candidates = n_ei_candidates
        self.gamma = gamma
        self._graph: tuple[Any, Any, Any] | None = None  # tpe's posterior graph, built once
        self._splits: list[tuple[Any, str]] = []  # tpe's ap_split_trials nodes and their labels
        self._observed: tuple[list[int], dict[str, list], dict[str, list]] = ([], {}, {})

    def observe(self, result: TrialResult) -> None:
        if result.value is None:
            self._observed = ([], {}, {})  # a failed trial leaves the history: rebuild it on next use
        super().observe(result)

    def _hyperopt_suggest(self, domain: Domain, tid: int, seed: int) -> dict[str, Any]:
        """hyperopt's ``tpe.suggest``, step for step, but with the posterior graph built once and the
        observed values extended as trials come instead of recollected from every doc on each call (at
        1,000 trials that rescan was most of a suggestion). The proposals are the same, seed for seed."""
        self._trials.refresh()
        docs = self._trials.trials
        if len(docs) < self.n_startup_jobs:
            return rand.suggest([tid], domain, self._trials, seed)[0]
        if self._graph is None:
            self._graph = tpe.build_posterior_wrapper(domain, tpe._default_prior_weight, self.gamma)
            self._splits = _split_nodes(*self._graph)
        observed, observed_loss, posterior = self._graph
        tids, idxs, vals = self._observed_values(docs)
        losses = [float("inf") if doc["result"].get("loss") is None else float(doc["result"]["loss"])
                  for doc in docs]
        first_fake = max(max(tids, default=tid), tid) + 2
        fake_ids = list(range(first_fake, first_fake + self.n_ei_candidates))
        memo = {domain.s_new_ids: fake_ids, domain.s_rng: np.random.default_rng(seed),
                observed_loss["idxs"]: tids, observed_loss["vals"]: losses,
                observed["idxs"]: idxs, observed["vals"]: vals}
        memo.update(self._split_values(tids, losses, idxs, vals))
        new_idxs, new_vals = pyll.rec_eval(posterior, memo=memo, print_node_on_error=False)
        for label, param in domain.params.items():  # tpe.suggest's offset for two-argument randint
            if param.name == "randint" and len(param.pos_args) == 2:
                new_vals[label] = [v + param.pos_args[0].obj for v in new_vals[label]]
        miscs = [{"tid": tid, "cmd": domain.cmd, "workdir": domain.workdir}]
        miscs_update_idxs_vals(miscs, new_idxs, new_vals, idxs_map={fake_ids[0]: tid},
                               assert_all_vals_used=False)
        return self._trials.new_trial_docs([tid], [None], [domain.new_result()], miscs)[0]

    def _split_values(self, tids: list[int], losses: list[float], idxs: dict[str, list],
                      vals: dict[str, list]) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
        """The values of tpe's ``ap_split_trials`` nodes (each label's observed values of the best trials
        and of the rest), computed with numpy where tpe loops in Python over every observation."""
        if not self._splits:
            return {}
        order = np.argsort(np.asarray(losses))  # the same sort as ap_split_trials: the same order on ties
        n_below = min(int(np.ceil(self.gamma * np.sqrt(len(losses)))), tpe.DEFAULT_LF)
        tid_array = np.asarray(tids)
        below, above = tid_array[order[:n_below]], tid_array[order[n_below:]]
        out = {}
        for node, label in self._splits:
            o_idxs, o_vals = np.asarray(idxs[label]), np.asarray(vals[label])
            out[node] = (_subset(o_vals, np.isin(o_idxs, below)), _subset(o_vals, np.isin(o_idxs, above)))
        return out

    def _observed_values(self, docs: list[dict]) -> tuple[list[int], dict[str, list], dict[str, list]]:
        """Trial ids, and per label the ids and values of the trials that have it (hyperopt's
        miscs_to_idxs_vals over `docs`), extended by the docs added since the last call."""
        tids, idxs, vals = self._observed
        if not idxs:
            idxs, vals = {label: [] for label in self._labels}, {label: [] for label in self._labels}
        for doc in docs[len(tids):]:
            tids.append(doc["tid"])
            misc = doc["misc"]
            for label in self._labels:
                idxs[label].extend(misc["idxs"][label])
                vals[label].extend(misc["vals"][label])
        self._observed = (tids, idxs, vals)
        return tids, idxs, vals


def _split_nodes(observed: dict, observed_loss: dict, posterior: Any) -> list[tuple[Any, str]]:
    """The ``ap_split_trials(observed idxs[label], observed vals[label], loss idxs, loss vals, gamma)``
    nodes of tpe's posterior graph, with their label; [] (no shortcut) if the graph is built differently
    from hyperopt 0.3's."""
    splits = []
    for node in pyll.dfs(pyll.as_apply(posterior)):
        if node.name != "ap_split_trials":
            continue
        args = node.pos_args
        shaped = (len(args) == 5 and not node.named_args and args[0].name == args[1].name == "getitem"
                  and args[0].pos_args[0] is observed["idxs"] and args[1].pos_args[0] is observed["vals"]
                  and args[2] is observed_loss["idxs"] and args[3] is observed_loss["vals"]
                  and args[0].pos_args[1].obj == args[1].pos_args[1].obj and args[4].name == "literal")
        if not shaped:
            return []
        splits.append((node, args[0].pos_args[1].obj))
    return splits


def _subset(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values[mask]`` as ap_split_trials builds it (``np.asarray`` of a list: float64 when empty)."""
    return values[mask] if mask.any() else np.asarray([])


class AnnealTuner(HyperoptTuner):
    """Simulated-annealing-like search around the best trials so far (hyperopt's ``anneal.suggest``); past
    ANNEAL_WINDOW observations it is given, for each parameter, the best ANNEAL_WINDOW that have it and the
    pending ones, and shrinks its neighbourhoods by the whole history's size, as it would with every trial."""

    def __init__(self, space: SearchSpace, *, optimize_mode: OptimizeMode = "minimize",
                 seed: int | None = None, constant_liar_type: LiarType = "best") -> None:
        super().__init__(space, optimize_mode=optimize_mode, seed=seed, constant_liar_type=constant_liar_type)
        self._label_counts: dict[str, int] = {}  #: valid docs (observed with a loss, or pending) per label
        #: per label, the best ANNEAL_WINDOW observed trials that have it: a heap of (-loss, -tid), worst on top
        self._best: dict[str, list[tuple[float, int]]] = {}
        self._docs: dict[int, dict[str, Any]] = {}  #: observed docs with a loss, by tid

    def mark_pending(self, params: dict) -> None:
        super().mark_pending(params)
        doc = self._pending.get(self.space.key(params))
        for label in _labels(doc):
            self._label_counts[label] = self._label_counts.get(label, 0) + 1

    def observe(self, result: TrialResult) -> None:
        doc = self._pending.get(self.space.key(result.params))
        super().observe(result)
        if doc is not None and result.value is not None:
            self._docs[doc["tid"]] = doc
        for label in _labels(doc):
            if result.value is None:
                self._label_counts[label] -= 1
                continue
            entry = (-float(doc["result"]["loss"]), -int(doc["tid"]))  # type: ignore[index]
            heap = self._best.setdefault(label, [])
            if len(heap) < ANNEAL_WINDOW:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)

    def _hyperopt_suggest(self, domain: Domain, tid: int, seed: int) -> dict[str, Any]:
        if len(self._losses) <= ANNEAL_WINDOW:
            self._trials.refresh()
            return anneal.suggest([tid], domain, self._trials, seed)[0]
        best = sorted({-tid for heap in self._best.values() for _, tid in heap})
        window = Trials()
        window._insert_trial_docs([*(self._docs[t] for t in best), *self._pending.values()])
        window.refresh()
        return _WindowedAnnealing(domain, window, seed, self._label_counts)(tid)[0]


def _labels(doc: dict[str, Any] | None) -> list[str]:
    """The labels a trial doc has a value for (those of the branches it took)."""
    return [] if doc is None else [label for label, values in doc["misc"]["vals"].items() if values]


class _WindowedAnnealing(anneal.AnnealingAlgo):
    """hyperopt's annealing on a window of the trials, its neighbourhood width shrunk by the number of
    trials that have each parameter in the whole history (`counts`), not in the window."""

    def __init__(self, domain: Domain, trials: Trials, seed: int, counts: dict[str, int]) -> None:
        super().__init__(domain, trials, seed)
        self.counts = counts

    def shrinking(self, label: str) -> float:
        return 1.0 / (1.0 + self.counts.get(label, 0) * self.shrink_coef)
