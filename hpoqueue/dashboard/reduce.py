"""Reductions that keep a chart drawable in well under a second however many trials it covers: a browser
draws a few hundred SVG marks quickly, not 10,000 (and WebGL is drawn in software on many machines), so
the many become a density (counts on a grid) or a band (quantiles per step) and only the few that matter
stay individual marks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

GRID_X = 60  #: columns of a density grid
GRID_Y = 40  #: rows of a density grid
BAND = (0.1, 0.5, 0.9)  #: quantiles of a band: its lower edge, middle line and upper edge


def axis_bins(values: Sequence[Any], bins: int, log: bool, categories: list[str] | None = None) -> dict[str, Any]:
    """Bin edges for numbers (logarithmic when `log` and every value is positive), or the categories (given,
    else in order of first appearance) for anything else; returned with each value's bin index."""
    if categories is not None or not numbers(values):
        labels = categories if categories is not None else list(dict.fromkeys(label(v) for v in values))
        where = {name: i for i, name in enumerate(labels)}
        return {"categories": labels, "index": np.array([where[label(v)] for v in values], dtype=np.int64)}
    data = np.asarray(values, dtype=float)
    log = log and bool(len(data)) and bool((data > 0).all())
    scaled = np.log10(data) if log else data
    low, high = (float(scaled.min()), float(scaled.max())) if len(data) else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    index = np.clip(((scaled - low) / (high - low) * bins).astype(np.int64), 0, bins - 1)
    return {"edges": (10 ** edges if log else edges).tolist(), "log": log, "index": index}


def density(xs: Sequence[Any], ys: Sequence[float], *, x_log: bool = False, y_log: bool = False,
            x_categories: list[str] | None = None, x_bins: int = GRID_X, y_bins: int = GRID_Y) -> dict[str, Any]:
    """How many (x, y) points fall in each cell of a grid: `x` and `y` are bin edges (or `x` the categories),
    `z[row][column]` the count, None where there is none (drawn transparent)."""
    bx, by = axis_bins(xs, x_bins, x_log, x_categories), axis_bins(ys, y_bins, y_log)
    columns = len(bx["categories"]) if "categories" in bx else x_bins
    rows = len(by["categories"]) if "categories" in by else y_bins
    grid = np.zeros((rows, columns), dtype=np.int64)
    np.add.at(grid, (by["index"], bx["index"]), 1)
    z = [[int(n) if n else None for n in row] for row in grid]
    x = bx.get("categories", bx.get("edges"))
    y = by.get("categories", by.get("edges"))
    return {"x": x, "y": y, "z": z, "x_log": bx.get("log", False), "y_log": by.get("log", False)}


def band(steps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Per step: the BAND quantiles of every value at that step (linear between order statistics, as numpy's
    default), and how many values there are."""
    order = np.lexsort((values, steps))
    steps, values = steps[order], values[order]
    unique, starts, counts = np.unique(steps, return_index=True, return_counts=True)
    out: dict[str, list[Any]] = {"step": unique.tolist(), "n": counts.tolist()}
    for key, q in zip(("low", "mid", "high"), BAND, strict=True):
        position = starts + q * (counts - 1)  # within each step's run of sorted values
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, starts + counts - 1)
        quantile = values[below] + (values[above] - values[below]) * (position - below)
        out[key] = [_finite(float(v)) for v in quantile]
    return out


def numbers(values: Iterable[Any]) -> bool:
    """Whether every value is a number (True and False are not): asked of each type once, not of each value."""
    return all(issubclass(kind, int | float) and not issubclass(kind, bool) for kind in set(map(type, values)))


def label(value: Any) -> str:
    """A category's name on an axis: a string as it is, anything else as Python writes it."""
    return value if isinstance(value, str) else repr(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
