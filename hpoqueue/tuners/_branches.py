"""Which option of a nested choice to try next: Thompson sampling over its branches (TPE and GP).

A branch that is best only in a narrow region looks poor on average, so a model that ranks branches by
their typical trial (TPE's global split, GP's one-hot columns) stops trying it. Each branch's draw is its
best loss less |z| x OPTIMISM standard errors of its losses (the spread of all losses for a branch tried
once); untried branches go first. The optimism shrinks as a branch is tried, so a poor branch fades out.
"""

from __future__ import annotations

import math

import numpy as np

OPTIMISM = 2.0


def pick_branch(rng: np.random.Generator, options: np.ndarray, losses: np.ndarray, n_options: int) -> int:
    """The option to take, given the option (`options`) and loss of every finished trial where the
    choice was active."""
    draws = np.empty(n_options)
    for o in range(n_options):
        mine = losses[options == o]
        if not len(mine):
            draws[o] = -np.inf
            continue
        spread = mine.std() if len(mine) > 1 else losses.std()
        z = abs(rng.standard_normal())
        draws[o] = mine.min() - z * OPTIMISM * spread / math.sqrt(len(mine))
    untried = np.flatnonzero(np.isneginf(draws))
    return int(rng.choice(untried) if len(untried) else np.argmin(draws))
