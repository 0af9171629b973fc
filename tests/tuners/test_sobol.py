"""hpoqueue's scrambled Sobol' generator against scipy's, and the TPE/GP imports it keeps light.

The TPE and GP start-up designs (and so every recorded benchmark number) depend on the points being
scipy's exactly and on the tuner's Generator being left where scipy left it.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from hpoqueue.tuners._sobol import ScrambledSobol


@pytest.mark.parametrize("d", [1, 2, 5, 21, 40])
@pytest.mark.parametrize("seed", [0, 7, 20250101])
@pytest.mark.parametrize("sizes", [(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), (3, 1, 8, 5, 16), (32, 7)],
                         ids=["ones", "mixed", "first-32"])
def test_same_points_and_rng_state_as_scipy(d: int, seed: int, sizes: tuple[int, ...]) -> None:
    """Successive ``random(n)`` calls equal scipy's bit for bit, and the caller's Generator (its
    stream and its SeedSequence's spawn count) ends where scipy leaves it."""
    qmc = pytest.importorskip("scipy.stats").qmc
    theirs_rng, ours_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    theirs = qmc.Sobol(d, scramble=True, seed=theirs_rng)
    ours = ScrambledSobol(d, ours_rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's "n should be a power of 2" for the first draw
        for n in sizes:
            expected, got = theirs.random(n), ours.random(n)
            assert got.shape == expected.shape == (n, d)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
    assert ours_rng.bit_generator.state == theirs_rng.bit_generator.state
    assert ours_rng.bit_generator.seed_seq.n_children_spawned == 1
    assert theirs_rng.bit_generator.seed_seq.n_children_spawned == 1
    np.testing.assert_array_equal(ours_rng.random(4), theirs_rng.random(4))
    assert ours_rng.spawn(1)[0].random() == theirs_rng.spawn(1)[0].random()


def test_points_are_a_balanced_design() -> None:
    """The first 2**k points put exactly one point in each of the 2**k slices of every axis."""
    points = ScrambledSobol(3, np.random.default_rng(1)).random(16)
    for axis in range(3):
        assert sorted(np.floor(points[:, axis] * 16).astype(int)) == list(range(16))


@pytest.mark.parametrize("module", ["hpoqueue.tuners._tpe", "hpoqueue.tuners._gp"])
def test_tuner_import_leaves_scipy_stats_out(module: str) -> None:
    """Importing the TPE or GP tuner (as the scheduler does) must not load ``scipy.stats``:
    its ``__init__`` alone costs the scheduler about 47 MiB of idle memory."""
    code = f"import sys, {module}; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
