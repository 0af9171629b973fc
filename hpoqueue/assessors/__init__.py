"""Assessors: stop hopeless trials early. Built-ins are looked up by NNI name in ASSESSORS."""

from __future__ import annotations

from typing import Any

from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.registry import AlgorithmConfigLike, Registry

#: built-ins by NNI name (case-insensitive: "MedianStop" too), each imported on first use; one line each,
#: which also exports the class from this package
ASSESSORS: Registry[BaseAssessor] = Registry("assessor", BaseAssessor)
ASSESSORS.register_lazy("hpoqueue.assessors._medianstop:MedianstopAssessor", "Medianstop")
ASSESSORS.register_lazy("hpoqueue.assessors._curvefitting:CurvefittingAssessor", "Curvefitting")
ASSESSORS.register_lazy("hpoqueue.assessors._asha:AshaAssessor", "ASHA")

__all__ = ["ASSESSORS", "BaseAssessor", "Decision", "OptimizeMode", "available_assessors", "create_assessor",
           *ASSESSORS.class_names()]


def create_assessor(config: AlgorithmConfigLike, *, optimize_mode: OptimizeMode,
                    source: str | None = None) -> BaseAssessor:
    """Build the assessor `config` names; the experiment's `optimize_mode` wins over classArgs."""
    return ASSESSORS.build(config, source=source, optimize_mode=optimize_mode)


def available_assessors() -> list[str]:
    """Canonical names of the built-in assessors."""
    return ASSESSORS.names()


def __getattr__(name: str) -> Any:
    cls = ASSESSORS.load(name)
    if cls is None:
        raise AttributeError(f"module 'hpoqueue.assessors' has no attribute {name!r}")
    return cls
