"""Files of the installed scipy, found and loaded without importing scipy's packages.

Why: importing ``scipy.special`` costs the scheduler about 24 MiB of idle memory, ``scipy.linalg`` 26,
``scipy.optimize`` 17 more (their ``__init__`` modules load much more than the few routines the TPE and GP
tuners call). The compiled routines themselves are small: each extension module below is loaded alone
from its file (1-3 MiB), so the tuners compute with scipy's own code, bit for bit. These are private
scipy modules: pyproject.toml bounds scipy's version, and tests/tuners/test_scipy_parts.py holds each
use equal to the public function it replaces.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType


def scipy_file(relative: str) -> Path:
    """The file ``relative`` (e.g. ``stats/_sobol_direction_numbers.npz``) inside the installed scipy."""
    spec = importlib.util.find_spec("scipy")
    roots = spec.submodule_search_locations if spec is not None else None
    for root in roots or []:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"scipy/{relative} not found: is scipy installed?")


@cache
def compiled(subpackage: str, name: str) -> ModuleType:
    """scipy's extension module ``scipy.<subpackage>.<name>``, loaded from its file alone (once)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        try:
            path = scipy_file(f"{subpackage}/{name}{suffix}")
        except FileNotFoundError:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            break
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    raise ImportError(f"scipy's compiled {subpackage}/{name} was not found: is scipy installed?")
