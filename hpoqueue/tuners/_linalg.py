"""The three ``scipy.linalg`` calls the GP makes, through scipy's own LAPACK wrappers (its compiled
``linalg/_flapack``, see _scipy_files) without importing ``scipy.linalg``: the same LAPACK routines
with the same arguments as ``cholesky``, ``cho_solve`` and ``solve_triangular`` with
``check_finite=False``, so the same bits (tests/tuners/test_scipy_parts.py compares them).
"""

from __future__ import annotations

import numpy as np

from hpoqueue.tuners._scipy_files import compiled

_flapack = compiled("linalg", "_flapack")


def cholesky_lower(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.cholesky(a, lower=True)``: the lower factor L of a = L L^T (zeros above the
    diagonal); ``np.linalg.LinAlgError`` when ``a`` is not positive definite."""
    chol, info = _flapack.dpotrf(np.asarray(a, dtype=np.float64), lower=1, clean=1, overwrite_a=0)
    if info > 0:
        raise np.linalg.LinAlgError(f"{info}-th leading minor of the array is not positive definite")
    if info < 0:
        raise ValueError(f"LAPACK reported an illegal value in argument {-info} of potrf")
    return chol


def cho_solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``scipy.linalg.cho_solve((chol, True), b)``: x with L L^T x = b, L from cholesky_lower."""
    x, info = _flapack.dpotrs(chol, np.asarray(b, dtype=np.float64), lower=1, overwrite_b=0)
    if info != 0:
        raise ValueError(f"illegal value in argument {-info} of potrs")
    return x


def solve_lower(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``scipy.linalg.solve_triangular(chol, b, lower=True)`` for the Fortran-ordered factor that
    cholesky_lower returns: x with L x = b."""
    x, info = _flapack.dtrtrs(chol, np.asarray(b, dtype=np.float64), lower=1, trans=0, unitdiag=0, overwrite_b=0)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular matrix: resolution failed at diagonal {info - 1}")
    if info < 0:
        raise ValueError(f"illegal value in argument {-info} of trtrs")
    return x
