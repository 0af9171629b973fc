"""Several objectives at once: the metric keys and directions a config names, each trial's values for
them, Pareto dominance, non-dominated sorting and crowding distance (NSGA-II's tools), pure."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from hpoqueue.results.optimize_mode import loss

#: (metric key, "minimize" | "maximize"); the key "default" is the trial's result itself
Objective = tuple[str, str]


def objective_values(objectives: Sequence[Objective], value: float | None, data: Any) -> tuple[float, ...] | None:
    """The trial's value for each objective (from its final result), None when one is missing."""
    out = []
    for metric, _mode in objectives:
        found = value if metric == "default" else (data.get(metric) if isinstance(data, dict) else None)
        if isinstance(found, bool) or not isinstance(found, numbers.Real) or not math.isfinite(found):
            return None
        out.append(float(found))
    return tuple(out)


def losses(objectives: Sequence[Objective], values: Sequence[float]) -> tuple[float, ...]:
    """`values` turned into quantities to minimise."""
    return tuple(loss(v, mode) for (_, mode), v in zip(objectives, values, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Losses `a` are nowhere worse than `b` and better somewhere."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` (losses) by non-dominated front: the Pareto front first."""
    dominated_by = [[j for j in range(len(points)) if dominates(points[i], points[j])] for i in range(len(points))]
    count = [sum(dominates(points[j], points[i]) for j in range(len(points))) for i in range(len(points))]
    out, current = [], [i for i, c in enumerate(count) if c == 0]
    while current:
        out.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = following
    return out


def crowding(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each index of `front` (the ends of every objective: infinite)."""
    distance = dict.fromkeys(front, 0.0)
    if not front:
        return distance
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][k])
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[here] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def pareto_front(items: Sequence[Any], points: Sequence[Sequence[float]]) -> list[Any]:
    """The items whose losses no other item's dominate."""
    return [items[i] for i in fronts(points)[0]] if items else []


def recorded_objectives(config: dict[str, Any]) -> list[Objective]:
    """The objectives of a recorded experiment's config ([] for one objective)."""
    return [(o["metric"], o["mode"]) for o in config.get("objectives") or []]


def trial_front(trials: Sequence[Any], objectives: Sequence[Objective]) -> list[Any]:
    """The Pareto front of the trials (records with final_value and final_data) that have every objective."""
    scored = [(t, objective_values(objectives, t.final_value, t.final_data)) for t in trials]
    kept = [(t, losses(objectives, v)) for t, v in scored if v is not None]
    return pareto_front([t for t, _ in kept], [p for _, p in kept])


def add_to_front(front: list[tuple[Any, tuple[float, ...]]], item: Any, objectives: Sequence[Objective],
                 value: float | None, data: Any) -> list[tuple[Any, tuple[float, ...]]]:
    """`front` (items with their losses) after a new result: kept out when dominated, else in, and the
    members it dominates out. A result without every objective changes nothing."""
    values = objective_values(objectives, value, data)
    if values is None:
        return front
    point = losses(objectives, values)
    if any(dominates(p, point) for _, p in front):
        return front
    return [(i, p) for i, p in front if not dominates(point, p)] + [(item, point)]
