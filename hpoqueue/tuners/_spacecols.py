"""Column bookkeeping over a search space's [0, 1] encoding, shared by the model-based tuners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpoqueue.space import SearchSpace


@dataclass(frozen=True)
class Columns:
    """Which encoded columns are one-hot groups, and conversions to one value per parameter."""

    starts: np.ndarray  # first encoded column of each parameter
    widths: np.ndarray  # columns per parameter (1, or the number of options of a choice)
    n_categories: np.ndarray  # options per parameter, 0 for numeric ones
    width: int
    #: per parameter, (index of the choice it is nested under, that choice's option), None at the top level
    parents: tuple[tuple[int, int] | None, ...] = ()

    @classmethod
    def of(cls, space: SearchSpace) -> Columns:
        dims = space.dims
        index = {d.path: i for i, d in enumerate(dims)}
        return cls(np.array([d.start for d in dims], dtype=int),
                   np.array([d.width for d in dims], dtype=int),
                   np.array([d.n_choices if d.kind == "categorical" else 0 for d in dims], dtype=int),
                   space.dim,
                   tuple((index[d.parent], int(d.parent_option)) if d.parent is not None  # type: ignore[arg-type]
                         else None for d in dims))

    def active(self, x: np.ndarray) -> np.ndarray:
        """Which parameters each encoded row of `x` uses (a nested one: only under its own option)."""
        out = np.ones((len(x), self.n_dims), dtype=bool)
        for i, link in enumerate(self.parents):  # parents come before their nested parameters
            if link is not None:
                p, option = link
                s, w = self.starts[p], self.widths[p]
                out[:, i] = out[:, p] & (np.argmax(x[:, s:s + w], axis=1) == option)
        return out

    def canonical(self, x: np.ndarray) -> np.ndarray:
        """Rows of `x` with the columns of parameters they do not use set to 0.5, as the space encodes
        them, so a model scores what would really run."""
        if not any(link is not None for link in self.parents):
            return x
        x = x.copy()
        active = self.active(x)
        for i, (s, w) in enumerate(zip(self.starts, self.widths, strict=True)):
            x[~active[:, i], s:s + w] = 0.5
        return x

    @property
    def n_dims(self) -> int:
        return len(self.starts)

    @property
    def numeric_mask(self) -> np.ndarray:
        """Encoded columns a gradient method may move freely (everything but one-hot columns)."""
        mask = np.ones(self.width, dtype=bool)
        for start, width, cats in zip(self.starts, self.widths, self.n_categories, strict=True):
            if cats:
                mask[start:start + width] = False
        return mask

    def to_ordinal(self, x: np.ndarray) -> np.ndarray:
        """One value per parameter: the numeric column, or the index of the chosen option."""
        return np.array([float(np.argmax(x[s:s + w])) if c else x[s]
                         for s, w, c in zip(self.starts, self.widths, self.n_categories, strict=True)])

    def from_ordinal(self, v: np.ndarray) -> np.ndarray:
        """Back to an encoded vector (options as one-hot)."""
        x = np.zeros(self.width)
        for value, s, c in zip(v, self.starts, self.n_categories, strict=True):
            if c:
                x[s + min(max(int(round(value)), 0), c - 1)] = 1.0
            else:
                x[s] = value
        return x

    def random(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """`m` uniformly random encoded vectors (one option set per one-hot group)."""
        x = rng.random((m, self.width))
        for s, c in zip(self.starts, self.n_categories, strict=True):
            if c:
                x[:, s:s + c] = np.eye(c)[rng.integers(c, size=m)]
        return x
