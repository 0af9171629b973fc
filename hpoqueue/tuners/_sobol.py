"""Scrambled Sobol' points, identical to ``scipy.stats.qmc.Sobol(d, scramble=True, seed=rng)``.

Why not scipy's own: importing anything under ``scipy.stats`` runs ``scipy/stats/__init__.py``
(about 47 MiB of the scheduler's idle memory, and 0.35 s of its start-up on an idle 2-core VM), and the
TPE and GP tuners only need the start-up design. This module reads the rows it needs of scipy's
direction-number table (Joe & Kuo, ``new-joe-kuo-6.21201``, shipped as an ``.npz`` in scipy.stats) with
zipfile and numpy's ``.npy`` reader, and repeats scipy's steps, so the points *and* the random draws are the
same bit for bit: a child Generator spawned from ``rng`` (the parent's stream is not consumed,
only its SeedSequence's spawn counter moves), a random digital shift, a left linear matrix
scramble of the direction numbers, then Gray-code order (Bratley & Fox, Algorithm 659).
``tests/tuners/test_sobol.py`` compares the two for several dimensions, seeds and draw sizes.
"""

from __future__ import annotations

import zipfile
from typing import IO

import numpy as np

from hpoqueue.tuners._scipy_files import scipy_file

BITS = 30  # scipy's default resolution; points are multiples of 2**-30


def _leading_rows(member: IO[bytes], d: int) -> np.ndarray:
    """The first ``d`` rows of the 1-D or 2-D ``.npy`` array in ``member``, read as a stream in small
    pieces: the whole table (21201 x 18 int64, 3 MiB) is never in memory at once, so the scheduler's
    heap does not keep it resident."""
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(member)
    if d > shape[0]:
        raise ValueError(f"at most {shape[0]} dimensions are supported")
    width = shape[1] if len(shape) > 1 else 1
    if not fortran_order or width == 1:  # row-major: the rows wanted come first
        return np.frombuffer(member.read(d * width * dtype.itemsize), dtype).reshape((d, *shape[1:]))
    columns = []
    for _ in range(width):  # column-major: the head of each column, then skip its tail
        columns.append(np.frombuffer(member.read(d * dtype.itemsize), dtype))
        rest = (shape[0] - d) * dtype.itemsize
        while rest > 0:
            piece = member.read(min(rest, 1 << 15))
            if not piece:
                raise EOFError(f"{member.name} is truncated")
            rest -= len(piece)
    return np.stack(columns, axis=1)


def _direction_table(d: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``d`` of scipy's primitive polynomials (``poly``) and initial direction numbers
    (``vinit``), read afresh for each generator rather than cached."""
    with zipfile.ZipFile(scipy_file("stats/_sobol_direction_numbers.npz")) as npz:
        with npz.open("poly.npy") as member:
            poly = _leading_rows(member, d)
        with npz.open("vinit.npy") as member:
            vinit = _leading_rows(member, d)
    return poly.astype(np.int64), vinit.astype(np.int64)


def direction_numbers(d: int) -> np.ndarray:
    """The unscrambled ``d x BITS`` direction numbers, column ``j`` scaled by ``2**(BITS-1-j)``."""
    poly, vinit = _direction_table(d)
    v = np.ones((d, BITS), dtype=np.int64)
    for row in range(1, d):
        p = int(poly[row])
        m = p.bit_length() - 1
        v[row, :m] = vinit[row, :m]
        for j in range(m, BITS):
            new = int(v[row, j - m])
            for k in range(m):
                if (p >> (m - 1 - k)) & 1:
                    new ^= int(v[row, j - k - 1]) << (k + 1)
            v[row, j] = new
    return (v << np.arange(BITS - 1, -1, -1, dtype=np.int64)).astype(np.uint32)


def _bits_msb_first(x: np.ndarray) -> np.ndarray:
    """The BITS binary digits of each entry, most significant first (a new last axis)."""
    return (x[..., None] >> np.arange(BITS - 1, -1, -1, dtype=np.uint32)) & np.uint32(1)


class ScrambledSobol:
    """Draws successive points of a scrambled Sobol' sequence in ``[0, 1)^d`` (``random(n)``)."""

    def __init__(self, d: int, rng: np.random.Generator) -> None:
        self.d = d
        self.num_generated = 0
        own = rng.spawn(1)[0]  # as scipy: a child generator, so the caller's stream is untouched
        # Random digital shift, then a random lower-triangular (unit-diagonal) matrix per
        # dimension applied over GF(2) to every direction number; draw order and dtype as scipy.
        shift_bits = own.integers(2, size=(d, BITS), dtype=np.uint32)
        self._shift = shift_bits @ (np.uint32(2) ** np.arange(BITS, dtype=np.uint32))
        ltm = np.tril(own.integers(2, size=(d, BITS, BITS), dtype=np.uint32))
        ltm[:, np.arange(BITS), np.arange(BITS)] = 1
        old = _bits_msb_first(direction_numbers(d)).astype(np.int64)
        new_bits = np.einsum("dpm,djm->djp", ltm.astype(np.int64), old) & 1
        weights = np.int64(1) << np.arange(BITS - 1, -1, -1, dtype=np.int64)
        self._sv = (new_bits @ weights).astype(np.uint32)
        self._quasi = self._shift.copy()

    def random(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points, shape ``(n, d)``; the very first point is the shift itself."""
        if self.num_generated + n > 2**BITS:
            raise ValueError(f"at most 2**{BITS} points can be drawn")
        rows = []
        index = self.num_generated - 1  # Gray-code step i flips the direction of i's lowest 0 bit
        if self.num_generated == 0 and n > 0:
            rows.append(self._quasi.copy())
            index = 0
        while len(rows) < n:
            low_zero = (~index & (index + 1)).bit_length() - 1
            self._quasi = self._quasi ^ self._sv[:, low_zero]
            rows.append(self._quasi.copy())
            index += 1
        self.num_generated += n
        points = np.array(rows, dtype=np.float64).reshape(n, self.d)
        return points / 2**BITS
