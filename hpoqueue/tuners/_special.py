"""The special functions TPE and GP use, as ``scipy.special`` computes them, without importing it.

``ndtr``, ``log_ndtr`` and ``erfcx`` are scipy's own ufuncs, taken from its compiled
``special/_special_ufuncs`` module (see _scipy_files). ``ndtri`` lives in a module that imports all of
``scipy.special``, so it is ported here (Cephes' rational approximations, as scipy's xsf library has
them, with the C library's logarithm as xsf takes it: numpy's SIMD log differs by an ulp on some CPUs, and
the tail's rational functions made that 4 ulp of the result), and ``logsumexp`` repeats scipy's numpy
steps for real input. tests/tuners/test_scipy_parts.py compares each with ``scipy.special`` over wide
ranges, tails included.
"""

from __future__ import annotations

import math

import numpy as np

from hpoqueue.tuners._scipy_files import compiled

_ufuncs = compiled("special", "_special_ufuncs")
ndtr: np.ufunc = _ufuncs.ndtr
log_ndtr: np.ufunc = _ufuncs.log_ndtr
erfcx: np.ufunc = _ufuncs.erfcx

_libm_log = np.frompyfunc(math.log, 1, 1)
_EXP_M2 = 0.13533528323661269189  # exp(-2): the central approximation serves y in (exp(-2), 1 - exp(-2))
_SQRT_2PI = 2.50662827463100050242
# for 0 <= |y - 0.5| <= 3/8
_P0 = (-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1,
       1.39312609387279679503e1, -1.23916583867381258016e0)
_Q0 = (1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1,
       -2.25462687854119370527e2, 2.00260212380060660359e2, -8.20372256168333339912e1,
       1.59056225126211695515e1, -1.18331621121330003142e0)
# for z = sqrt(-2 log y) in [2, 8): y between exp(-2) and exp(-32)
_P1 = (4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1,
       4.40805073893200834700e1, 1.46849561928858024014e1, 2.18663306850790267539e0,
       -1.40256079171354495875e-1, -3.50424626827848203418e-2, -8.57456785154685413611e-4)
_Q1 = (1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1,
       1.50425385692907503408e1, 2.50464946208309415979e0, -1.42182922854787788574e-1,
       -3.80806407691578277194e-2, -9.33259480895457427372e-4)
# for z in [8, 64): y between exp(-32) and exp(-2048)
_P2 = (3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0,
       1.33303460815807542389e0, 2.01485389549179081538e-1, 1.23716634817820021358e-2,
       3.01581553508235416007e-4, 2.65806974686737550832e-6, 6.23974539184983293730e-9)
_Q2 = (6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0,
       2.16236993594496635890e-1, 1.34204006088543189037e-2, 3.28014464682127739104e-4,
       2.89247864745380683936e-6, 6.79019408009981274425e-9)


def _clog(x: np.ndarray) -> np.ndarray:
    """The C library's log, elementwise, as scipy's compiled ndtri takes it (numpy's may be an ulp off)."""
    return np.asarray(_libm_log(x), dtype=np.float64)


def _polevl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Cephes' polevl: the polynomial with coefficients ``coef`` (highest degree first), by Horner."""
    ans = np.full_like(x, coef[0])
    for c in coef[1:]:
        ans *= x
        ans += c
    return ans


def _p1evl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Cephes' p1evl: as _polevl with an implicit leading coefficient 1."""
    ans = x + coef[0]
    for c in coef[1:]:
        ans *= x
        ans += c
    return ans


def _tail_correction(z: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Cephes' x1 for z = 1 / sqrt(-2 log y): one rational function up to x = 8, another beyond."""
    out = np.empty_like(z)
    for rows, p, q in ((~far, _P1, _Q1), (far, _P2, _Q2)):
        if rows.any():
            zr = z[rows]
            out[rows] = zr * _polevl(zr, p) / _p1evl(zr, q)
    return out


def ndtri(p: np.ndarray) -> np.ndarray:
    """The inverse of the standard normal CDF (``scipy.special.ndtri``), elementwise, float64; each
    branch is computed only for the elements that take it (TPE calls this per column, on few points)."""
    y0 = np.asarray(p, dtype=np.float64)
    out = np.full(y0.shape, np.nan)  # stays NaN outside [0, 1]
    upper = y0 > 1.0 - _EXP_M2
    y = np.where(upper, 1.0 - y0, y0)
    central = y > _EXP_M2
    if central.any():
        yc = y[central] - 0.5
        y2 = yc * yc
        out[central] = (yc + yc * (y2 * _polevl(y2, _P0) / _p1evl(y2, _Q0))) * _SQRT_2PI
    tail = ~central & (y > 0.0)
    if tail.any():
        x = np.sqrt(-2.0 * _clog(y[tail]))  # >= 2: y <= exp(-2)
        x0 = x - _clog(x) / x
        x1 = _tail_correction(1.0 / x, x >= 8.0)
        out[tail] = np.where(upper[tail], x0 - x1, x1 - x0)
    out[y == 0.0] = np.where(upper[y == 0.0], np.inf, -np.inf)
    return out


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``scipy.special.logsumexp(a, axis=axis)`` for real ``a``: scipy's steps (the largest term
    factored out, the others summed through log1p) with numpy's same reductions, so the same bits."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out_inf = np.log(np.sum(np.exp(a), axis=axis, keepdims=True))
        a_max = np.max(a, axis=axis, keepdims=True)
        is_max = a == a_max
        m = np.sum(is_max.astype(np.float64), axis=axis, keepdims=True, dtype=np.float64)
        s = np.sum(np.exp(np.where(is_max, -np.inf, a) - a_max), axis=axis, keepdims=True, dtype=np.float64)
        out = np.log1p(s / m) + np.log(m) + a_max
    return np.squeeze(np.where(np.isfinite(out), out, out_inf), axis=axis)
