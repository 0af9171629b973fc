"""Tuners: one module per member, registered once, in tuners/_registry.py, under its NNI names;
`create_tuner` builds one from config.

Members are imported on first use (``TUNERS.resolve`` or attribute access here), so a process pays only
for the tuner it runs.
"""

from __future__ import annotations

from typing import Any

from hpoqueue.tuners._base import BaseTuner, SequentialTuner
from hpoqueue.tuners._registry import TUNERS, available_tuners, create_tuner

__all__ = ["TUNERS", "BaseTuner", "SequentialTuner", "available_tuners", "create_tuner",
           *TUNERS.class_names()]


def __getattr__(name: str) -> Any:
    cls = TUNERS.load(name)
    if cls is None:
        raise AttributeError(f"module 'hpoqueue.tuners' has no attribute {name!r}")
    return cls
