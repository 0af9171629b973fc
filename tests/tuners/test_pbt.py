"""PBT: generations as barriers, exploit copies a top member's checkpoint, explore stays in bounds."""

from __future__ import annotations

from pathlib import Path

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import PBTTuner
from hpoqueue.tuners._pbt import LOAD_KEY, SAVE_KEY

SPACE = SearchSpace.from_dict({"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
                               "units": {"_type": "randint", "_value": [8, 64]},
                               "act": {"_type": "choice", "_value": ["relu", "tanh"]}})


def _run_generation(tuner: PBTTuner, start_seq: int) -> list[dict]:
    params = [s.params for s in tuner.suggest(100)]
    for offset, p in enumerate(params):
        assert tuner.suggest(1) == []  # the generation is still running
        tuner.observe(TrialResult(start_seq + offset, p, TrialState.SUCCEEDED, p["lr"]))
    return params


def test_bottom_members_exploit_top_checkpoints_and_stay_in_bounds(tmp_path: Path) -> None:
    tuner = PBTTuner(SPACE, seed=0, all_checkpoint_dir=str(tmp_path), population_size=10,
                     fraction=0.2, resample_probability=0.0)
    gen0 = _run_generation(tuner, 1)
    assert len(gen0) == 10
    assert all(p[LOAD_KEY] == p[SAVE_KEY] == str(tmp_path / str(i) / "0") for i, p in enumerate(gen0))
    gen1 = [s.params for s in tuner.suggest(100)]
    ranked = sorted(range(10), key=lambda i: gen0[i]["lr"])  # minimize lr
    top, bottom = ranked[:2], ranked[-2:]
    for i, p in enumerate(gen1):
        assert p[SAVE_KEY] == str(tmp_path / str(i) / "1")
        SPACE.validate_params({k: v for k, v in p.items() if k not in PBTTuner.extra_params})
        if i in bottom:
            donor = next(j for j in top if gen0[j][SAVE_KEY] == p[LOAD_KEY])
            assert p["act"] == gen0[donor]["act"]
            ratio = p["lr"] / gen0[donor]["lr"]
            assert min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-6 or p["lr"] in (1e-4, 1e-1)
        else:
            assert p[LOAD_KEY] == gen0[i][SAVE_KEY]
            assert {k: p[k] for k in SPACE.names()} == {k: gen0[i][k] for k in SPACE.names()}


def test_rebuild_resumes_the_running_generation(tmp_path: Path) -> None:
    live = PBTTuner(SPACE, seed=0, all_checkpoint_dir=str(tmp_path), population_size=4, fraction=0.25)
    gen0 = _run_generation(live, 1)
    trials = [TrialResult(i + 1, p, TrialState.SUCCEEDED, p["lr"]) for i, p in enumerate(gen0)]
    gen1 = [s.params for s in live.suggest(2)]
    trials += [TrialResult(5 + i, p, TrialState.RUNNING) for i, p in enumerate(gen1)]
    resumed = PBTTuner(SPACE, seed=9, all_checkpoint_dir=str(tmp_path), population_size=4,
                       fraction=0.25)
    resumed.rebuild(trials)
    dirs = [(s.params[LOAD_KEY], s.params[SAVE_KEY]) for s in resumed.suggest(10)]
    assert dirs == [(s.params[LOAD_KEY], s.params[SAVE_KEY]) for s in live.suggest(10)]
    assert [d[1] for d in dirs] == [str(tmp_path / "2" / "1"), str(tmp_path / "3" / "1")]


def test_a_failed_member_ranks_last_and_no_one_copies_it(tmp_path: Path) -> None:
    """A member whose trial failed (no result) is in the bottom fraction: it loads a top member's checkpoint
    in the next generation, and nobody loads its own."""
    for mode in ("minimize", "maximize"):
        tuner = PBTTuner(SPACE, seed=1, all_checkpoint_dir=str(tmp_path / mode), population_size=4,
                         fraction=0.25, optimize_mode=mode)
        gen0 = [s.params for s in tuner.suggest(4)]
        for seq, p in enumerate(gen0, start=1):
            failed = seq == 2
            tuner.observe(TrialResult(seq, p, TrialState.FAILED if failed else TrialState.SUCCEEDED,
                                      None if failed else float(seq)))
        gen1 = [s.params for s in tuner.suggest(4)]
        best = gen0[0 if mode == "minimize" else 3]
        assert gen1[1][LOAD_KEY] == best[SAVE_KEY], mode
        assert all(p[LOAD_KEY] != gen0[1][SAVE_KEY] for p in gen1), mode
