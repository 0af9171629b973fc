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

    @classmethod
    def of(cls, space: SearchSpace) -> Columns:
        dims = space.dims
        return cls(np.array([d.start for d in dims], dtype=int),
                   np.array([d.width for d in dims], dtype=int),
                   np.array([d.n_choices if d.kind == "categorical" else 0 for d in dims], dtype=int),
                   space.dim)

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
