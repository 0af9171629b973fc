"""GridSearch: the exact grid of a finite space; ever finer grids on a continuous one."""

from __future__ import annotations

from hpoqueue.space import SearchSpace
from hpoqueue.tuners import GridSearchTuner


def test_enumerates_exactly_the_grid_of_a_finite_space_in_order() -> None:
    space = SearchSpace.from_dict({
        "a": {"_type": "choice", "_value": ["x", "y"]},
        "b": {"_type": "randint", "_value": [3, 6]},
        "q": {"_type": "quniform", "_value": [2, 10, 5]},
        "n": {"_type": "choice", "_value": [{"_name": "on", "k": {"_type": "randint", "_value": [0, 2]}},
                                            {"_name": "off"}]},
    })
    tuner = GridSearchTuner(space)
    got = [s.params for s in tuner.suggest(1000)]
    assert got == space.grid() and len(got) == space.size == 2 * 3 * 3 * 3
    assert tuner.exhausted and tuner.suggest(1) == []


def test_subdivides_a_continuous_space_and_never_repeats() -> None:
    space = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]},
                                   "c": {"_type": "choice", "_value": [1, 2]}})
    tuner = GridSearchTuner(space)
    xs = [s.params["x"] for s in tuner.suggest(6)]
    assert sorted(set(xs)) == [0.0, 0.5, 1.0]  # the coarse grid first
    more = [s.params for s in tuner.suggest(4)]
    assert sorted({p["x"] for p in more}) == [0.25, 0.75]  # then its midpoints
    rest = [s.params for s in tuner.suggest(100)]
    keys = [space.key(p) for p in more + rest]
    assert len(set(keys)) == len(keys) == 104 and not tuner.exhausted


def test_resumed_grid_skips_configurations_already_created() -> None:
    space = SearchSpace.from_dict({"a": {"_type": "randint", "_value": [0, 5]}})
    tuner = GridSearchTuner(space)
    tuner.mark_pending({"a": 0})
    tuner.mark_pending({"a": 3})
    assert [s.params["a"] for s in tuner.suggest(10)] == [1, 2, 4]
