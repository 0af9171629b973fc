"""The scipy routines TPE and GP use without importing scipy's packages, against the public functions.

TPE and GP call ``ndtr``, ``log_ndtr``, ``erfcx``, ``ndtri``, ``logsumexp``, three LAPACK solvers and
L-BFGS-B through hpoqueue.tuners._special, _linalg and _lbfgsb, which load scipy's compiled modules by
file (importing ``scipy.special``, ``scipy.linalg`` and ``scipy.optimize`` cost the scheduler 40 MiB of
idle memory). Every recorded tuner result depends on these giving scipy's numbers; all give scipy's bits
(``ndtri``, a numpy port, too: it takes the C library's log, as scipy does).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import GPTuner
from hpoqueue.tuners._gp_model import Acquisition, LocalPenalty, Objective, Posterior, _neg_log_posterior, _sqdiff
from hpoqueue.tuners._lbfgsb import minimize_lbfgsb
from hpoqueue.tuners._linalg import cho_solve_lower, cholesky_lower, solve_lower
from hpoqueue.tuners._special import erfcx, log_ndtr, logsumexp, ndtr, ndtri

special = pytest.importorskip("scipy.special")
linalg = pytest.importorskip("scipy.linalg")
optimize = pytest.importorskip("scipy.optimize")

#: Arguments of the normal CDF family: both tails down to underflow, the centre densely, odd values.
Z = np.concatenate([np.linspace(-40.0, 40.0, 200_001), -np.logspace(-300, 3, 2_001), np.logspace(-300, 3, 2_001),
                    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308]])
#: Probabilities: both tails over every exponent, the centre densely, the ends and outside them.
P = np.concatenate([np.logspace(-320, 0, 200_001), 1.0 - np.logspace(-17, 0, 100_001),
                    np.random.default_rng(0).random(200_000), [0.0, 1.0, -0.5, 1.5, np.nan, 5e-324, 0.5]])


@pytest.mark.parametrize("ours, theirs", [(ndtr, special.ndtr), (log_ndtr, special.log_ndtr),
                                          (erfcx, special.erfcx)], ids=["ndtr", "log_ndtr", "erfcx"])
def test_compiled_special_functions_are_scipys(ours: np.ufunc, theirs: np.ufunc) -> None:
    np.testing.assert_array_equal(ours(Z), theirs(Z))


def test_ndtri_is_scipys() -> None:
    """The port takes its logarithms from the C library, as scipy does: numpy's own (SIMD on AVX-512 CPUs)
    differ by an ulp, which the tail's rational functions made up to 4 ulp of the result."""
    ours, theirs = ndtri(P), special.ndtri(P)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(ours[~finite & ~np.isnan(theirs)], theirs[~finite & ~np.isnan(theirs)])
    np.testing.assert_array_equal(ours[finite], theirs[finite])


def test_logsumexp_is_scipys() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(scale=300.0, size=(400, 37))
    a[::7, 3] = -np.inf  # zero weights
    a[5] = -np.inf  # a row of them
    a[9, :] = 2.5  # all tied
    a[11, [1, 4]] = a[11].max() + 1.0  # two maxima
    a[13, 2], a[17, 6] = np.inf, np.nan
    a[19, :] = rng.normal(scale=1e-3, size=37) - 800.0  # underflow of every exp
    a[20:200] = rng.normal(size=(180, 37))  # terms of one size: log1p of a sum near 1, 10, 30
    a[200:300, 0] += 30.0  # one term dominates: log1p of a tiny sum
    for axis in (0, 1):
        np.testing.assert_array_equal(logsumexp(a, axis=axis), special.logsumexp(a, axis=axis))


@pytest.mark.parametrize("n", [1, 5, 60, 300])
def test_linear_algebra_is_scipys(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n))
    kmat = a @ a.T + 1e-3 * np.eye(n)
    chol = cholesky_lower(kmat)
    np.testing.assert_array_equal(chol, linalg.cholesky(kmat, lower=True, check_finite=False))
    y, b = rng.normal(size=n), rng.normal(size=(7, n)).T  # a transposed view, as Posterior passes
    np.testing.assert_array_equal(cho_solve_lower(chol, y), linalg.cho_solve((chol, True), y, check_finite=False))
    np.testing.assert_array_equal(cho_solve_lower(chol, np.eye(n)),
                                  linalg.cho_solve((chol, True), np.eye(n), check_finite=False))
    np.testing.assert_array_equal(solve_lower(chol, b), linalg.solve_triangular(chol, b, lower=True,
                                                                                  check_finite=False))


def test_cholesky_of_a_matrix_that_is_not_positive_definite_raises_linalg_error() -> None:
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_lower(np.array([[1.0, 2.0], [2.0, 1.0]]))


def _scipy_lbfgsb(fun, x0, lower, upper, **options) -> tuple[np.ndarray, float]:
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lower, upper, strict=True)),
                            options=options)
    return res.x, res.fun


def _kernel_fit_problems() -> list[tuple[object, np.ndarray, np.ndarray, np.ndarray]]:
    """GP kernel fits as fit_kernel runs them: (objective, start, lower, upper) on 4 data sets."""
    out = []
    for seed, (n, d) in enumerate([(3, 1), (12, 2), (40, 5), (90, 8)]):
        rng = np.random.default_rng(seed)
        x = rng.random((n, d))
        y = np.sin(6 * x).sum(axis=1) + 0.05 * rng.normal(size=n)
        y = (y - y.mean()) / y.std()
        sq = _sqdiff(x, x)
        lower, upper = np.array([-9.0] * d + [-6.0, -16.0]), np.array([9.0] * d + [4.0, 1.0])
        for start in (np.concatenate([np.zeros(d), [0.0, np.log(1e-2)]]), rng.uniform(lower, upper)):
            out.append((lambda r, sq=sq, y=y: _neg_log_posterior(r, sq, y), start, lower, upper))
    return out


def _acquisition_problems() -> list[tuple[object, np.ndarray, np.ndarray, np.ndarray]]:
    """GP's refinement of candidates as GPTuner._refine runs it: the summed log EI (with and without a
    pending point's penalty) of 5 starts at once, in the box [0, 1]."""
    rng = np.random.default_rng(11)
    x = rng.random((25, 3))
    y = np.cos(5 * x).sum(axis=1)
    y = (y - y.mean()) / y.std()
    post = Posterior(x, y, np.array([1.5, 0.5, 2.0, 0.0, np.log(1e-3)]))
    acq = Acquisition("ei", float(y.min()), 5.0, 0.0)
    penalty = LocalPenalty.of(post, rng.random((2, 3)), float(y.min()), rng.random((50, 3)))
    out = []
    for obj in (Objective(post, acq), Objective(post, acq, penalty)):
        def negacq(z: np.ndarray, obj: Objective = obj) -> tuple[float, np.ndarray]:
            value, grad = obj.value_grad(z.reshape(5, 3))
            return -float(value.sum()), -grad.ravel()

        out.append((negacq, rng.random(15), np.zeros(15), np.ones(15)))
    return out


@pytest.mark.parametrize("case", range(10))
def test_lbfgsb_ends_where_scipy_minimize_ends_on_the_gps_objectives(case: int) -> None:
    """Same end point and value, bit for bit, with fit_kernel's and _refine's options (an iteration cap
    that binds, tolerances that bind first)."""
    problems = _kernel_fit_problems() + _acquisition_problems()
    fun, start, lower, upper = problems[case]
    options = {"maxiter": 200} if case < 8 else {"maxiter": 100, "ftol": 1e-15, "gtol": 1e-9}
    ours = minimize_lbfgsb(fun, start, lower, upper, **options)
    theirs = _scipy_lbfgsb(fun, start, lower, upper, **options)
    np.testing.assert_array_equal(ours[0], theirs[0])
    assert ours[1] == theirs[1]


def test_lbfgsb_stops_at_the_iteration_cap_as_scipy() -> None:
    def rosenbrock(z: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = z[:-1], z[1:]
        grad = np.zeros_like(z)
        grad[:-1] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
        grad[1:] += 200.0 * (b - a * a)
        return float(np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2)), grad

    lower, upper = np.full(6, -2.0), np.full(6, 0.8)  # the optimum (1, ..., 1) lies outside: bounds bind
    for maxiter in (1, 3, 15000):
        ours = minimize_lbfgsb(rosenbrock, np.full(6, -1.5), lower, upper, maxiter=maxiter)
        theirs = _scipy_lbfgsb(rosenbrock, np.full(6, -1.5), lower, upper, maxiter=maxiter)
        np.testing.assert_array_equal(ours[0], theirs[0])
        assert ours[1] == theirs[1]


def test_tpe_gp_and_auto_suggest_without_importing_scipy() -> None:
    """Building TPE, GP and Auto (both of Auto's phases) and running their models, sequentially and with
    pending trials, loads no scipy package: scipy.special, .linalg and .optimize would cost a local run
    40 MiB of its 143 MiB (150 MB) idle budget, scipy.stats 47 more."""
    code = textwrap.dedent("""
        import sys
        from hpoqueue.results.records import TrialResult
        from hpoqueue.space import SearchSpace
        from hpoqueue.states import TrialState
        from hpoqueue.tuners import GPTuner, TPETuner
        from hpoqueue.tuners._auto import GP_MAX_TRIALS, AutoTuner

        small = SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]},
                                       "n": {"_type": "randint", "_value": [1, 9]}})
        wide = SearchSpace.from_dict({f"c{i}": {"_type": "choice", "_value": [1, 2, 3]} for i in range(4)}
                                     | {"lr": {"_type": "loguniform", "_value": [1e-5, 1]}})
        loss = lambda p: sum(float(v) for v in p.values())
        for tuner in [TPETuner(small, seed=0), GPTuner(small, seed=0), AutoTuner(small, seed=0),
                      AutoTuner(wide, seed=0)]:
            seq = 0
            for batch in [1] * 14 + [3] * 3:
                for s in tuner.suggest(batch)[:1]:
                    seq += 1
                    tuner.observe(TrialResult(seq, s.params, TrialState.SUCCEEDED, loss(s.params)))
        handed_over = AutoTuner(small, seed=0)
        handed_over.rebuild([TrialResult(i + 1, {"x": i / 300, "n": 1 + i % 8}, TrialState.SUCCEEDED, i % 7)
                             for i in range(GP_MAX_TRIALS)])
        handed_over.suggest(2)
        print(handed_over.current, sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy.")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["TPE", "[]"]


def _gp_run(seed: int) -> list[float]:
    """x of 14 suggestions of a GP tuner on a 1-d quadratic (10 Sobol points, then the model's)."""
    tuner, xs = GPTuner(SearchSpace.from_dict({"x": {"_type": "uniform", "_value": [0, 1]}}), seed=seed), []
    for seq in range(1, 15):
        params = tuner.suggest(1)[0].params
        xs.append(params["x"])
        tuner.observe(TrialResult(seq, params, TrialState.SUCCEEDED, (params["x"] - 0.3) ** 2))
    return xs


def test_gp_suggests_the_same_when_scipys_packages_were_imported_first() -> None:
    """A process may import scipy.optimize before the GP tuner loads scipy's compiled modules by file (an
    assessor fitting curves in the scheduler): both copies work, and the GP suggests what it suggests here,
    where hpoqueue loaded them first."""
    code = textwrap.dedent("""
        import scipy.linalg, scipy.optimize, scipy.special
        from tests.tuners.test_scipy_parts import _gp_run
        print(repr(_gp_run(4)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(_gp_run(4))
