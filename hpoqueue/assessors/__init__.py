"""Assessors: stop hopeless trials early. Built-ins are looked up by NNI name in ASSESSORS."""

from __future__ import annotations

import importlib
from typing import Any

from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.registry import AlgorithmConfigLike, Registry

_CLASSES = {"MedianstopAssessor": "_medianstop", "CurvefittingAssessor": "_curvefitting", "AshaAssessor": "_asha"}

__all__ = ["ASSESSORS", "BaseAssessor", "Decision", "OptimizeMode", "available_assessors", "create_assessor",
           *_CLASSES]

#: built-ins by NNI name (case-insensitive: "MedianStop" too), each imported on first use
ASSESSORS: Registry[BaseAssessor] = Registry("assessor", BaseAssessor)
ASSESSORS.register_lazy("hpoqueue.assessors._medianstop:MedianstopAssessor", "Medianstop")
ASSESSORS.register_lazy("hpoqueue.assessors._curvefitting:CurvefittingAssessor", "Curvefitting")
ASSESSORS.register_lazy("hpoqueue.assessors._asha:AshaAssessor", "ASHA")


def create_assessor(config: AlgorithmConfigLike, *, optimize_mode: OptimizeMode,
                    source: str | None = None) -> BaseAssessor:
    """Build the assessor `config` names; the experiment's `optimize_mode` wins over classArgs."""
    return ASSESSORS.build(config, source=source, optimize_mode=optimize_mode)


def available_assessors() -> list[str]:
    """Canonical names of the built-in assessors."""
    return ASSESSORS.names()


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(f"hpoqueue.assessors.{_CLASSES[name]}"), name)
    raise AttributeError(f"module 'hpoqueue.assessors' has no attribute {name!r}")
