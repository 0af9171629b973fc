"""Running NNI's trial code unchanged: the folder holding hpoqueue's `nni` stand-in, put on a trial's path."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

#: the folder whose `nni` package delegates to hpoqueue.trial (a real NNI install still wins, see there)
SHIM_DIR = Path(__file__).resolve().parent / "shim"


def add_nni_shim(env: MutableMapping[str, str]) -> None:
    """Append SHIM_DIR to the trial's PYTHONPATH: after the user's own entries, seen by the trial alone."""
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(SHIM_DIR) not in parts:
        env["PYTHONPATH"] = os.pathsep.join([*parts, str(SHIM_DIR)])


def use_nni_shim_here() -> None:
    """Let this process import the stand-in `nni` (for custom tuners written against NNI), after every
    other entry of sys.path, so that a real NNI wins."""
    if str(SHIM_DIR) not in sys.path:
        sys.path.append(str(SHIM_DIR))
