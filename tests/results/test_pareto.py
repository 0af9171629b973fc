"""Several objectives: Pareto tools, the `objectives` config field, and NSGA2 searching for the front."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import pytest

from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.errors import ConfigError
from hpoqueue.results.pareto import crowding, fronts, objective_values
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import create_tuner

OBJECTIVES = [{"metric": "default", "mode": "minimize"}, {"metric": "f2", "mode": "minimize"}]


def test_fronts_and_crowding() -> None:
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (2, 6)]
    assert fronts(points) == [[0, 1, 2], [3, 5], [4]]
    distance = crowding(points, [0, 1, 2])
    assert distance[0] == distance[2] == float("inf") and distance[1] == pytest.approx(2.0)
    assert objective_values([("default", "minimize"), ("lat", "maximize")], 0.5, {"lat": 3}) == (0.5, 3.0)
    assert objective_values([("default", "minimize"), ("lat", "maximize")], 0.5, {"other": 3}) is None


def load(tuner: str, objectives: object) -> object:
    return config_from_dict({"trialCommand": "true", "trialConcurrency": 1, "searchSpace": {},
                             "tuner": {"name": tuner}, "objectives": objectives}, source="exp.yml", base_dir=Path("/"))


def test_objectives_need_a_tuner_that_searches_for_the_front() -> None:
    config = load("NSGA2", [{"metric": "accuracy", "mode": "maximize"}, {"metric": "latency", "mode": "minimize"}])
    assert config.objectives == (("accuracy", "maximize"), ("latency", "minimize"))  # type: ignore[attr-defined]
    assert config_from_dict(config.to_dict()) == config  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="exp.yml: objectives: tuner TPE searches for one objective .use tuner: "
                                          "{name: NSGA2}"):
        load("TPE", OBJECTIVES)
    for bad, message in (([OBJECTIVES[0]], "two or more"), ([OBJECTIVES[0], {"metric": "x", "mode": "up"}],
                                                             r"objectives\[1\].mode: must be 'minimize'"),
                         ([OBJECTIVES[0], OBJECTIVES[0]], "named twice")):
        with pytest.raises(ConfigError, match=message):
            load("NSGA2", bad)


def _zdt1(params: dict) -> tuple[float, float]:
    x = [params[f"x{i}"] for i in range(4)]
    g = 1 + 9 * sum(x[1:]) / 3
    return x[0], g * (1 - (x[0] / g) ** 0.5)


def _hypervolume(points: list[tuple[float, float]], ref: tuple[float, float] = (1.1, 11.0)) -> float:
    area, previous = 0.0, ref[1]
    for a, b in sorted(points[i] for i in fronts(points)[0]):
        if a < ref[0] and b < previous:
            area, previous = area + (ref[0] - a) * (previous - b), b
    return area


def _search(name: str, seed: int) -> float:
    space = SearchSpace.from_dict({f"x{i}": {"_type": "uniform", "_value": [0, 1]} for i in range(4)})
    args = {"objectives": OBJECTIVES, "population_size": 12} if name == "NSGA2" else {}
    config = load(name, OBJECTIVES if name == "NSGA2" else None).tuner  # type: ignore[attr-defined]
    tuner = create_tuner(config.__class__(name=name, class_args=args), space, optimize_mode="minimize", seed=seed)
    points = []
    for seq in range(1, 101):
        params = tuner.suggest(1)[0].params
        a, b = _zdt1(params)
        points.append((a, b))
        tuner.observe(TrialResult(seq=seq, params=params, state=TrialState.SUCCEEDED, value=a,
                                  data={"default": a, "f2": b}))
    return _hypervolume(points)


def test_nsga2_finds_a_better_front_than_random_search() -> None:
    nsga2, random = [_search("NSGA2", s) for s in range(5)], [_search("Random", s) for s in range(5)]
    assert median(nsga2) > median(random) + 0.5, (nsga2, random)
