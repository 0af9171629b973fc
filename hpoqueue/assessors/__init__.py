"""Assessors: stop hopeless trials early. Built-ins are looked up by NNI name in ASSESSORS."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hpoqueue.assessors._asha import AshaAssessor
from hpoqueue.assessors._base import BaseAssessor, Decision, OptimizeMode
from hpoqueue.assessors._curvefitting import CurvefittingAssessor
from hpoqueue.assessors._medianstop import MedianstopAssessor
from hpoqueue.registry import Registry

__all__ = [
    "ASSESSORS", "AshaAssessor", "BaseAssessor", "CurvefittingAssessor", "Decision", "MedianstopAssessor",
    "OptimizeMode", "available_assessors", "create_assessor",
]

ASSESSORS: Registry[BaseAssessor] = Registry("assessor", BaseAssessor)
ASSESSORS.register("Medianstop")(MedianstopAssessor)  # names are case-insensitive: "MedianStop" too
ASSESSORS.register("Curvefitting")(CurvefittingAssessor)
ASSESSORS.register("ASHA")(AshaAssessor)


class AssessorConfig(Protocol):
    """The `assessor:` section of an experiment config, as the config module parses it."""

    @property
    def name(self) -> str | None: ...
    @property
    def class_name(self) -> str | None: ...
    @property
    def code_directory(self) -> str | Path | None: ...
    @property
    def class_args(self) -> dict[str, Any] | None: ...


def create_assessor(config: AssessorConfig, *, optimize_mode: OptimizeMode,
                    source: str | None = None) -> BaseAssessor:
    """Build the assessor `config` names. NNI configs repeat ``optimize_mode`` in classArgs; the
    experiment's `optimize_mode` wins and that copy is dropped."""
    class_args = {k: v for k, v in (config.class_args or {}).items() if k != "optimize_mode"}
    code_directory = Path(config.code_directory) if config.code_directory is not None else None
    return ASSESSORS.create(name=config.name, class_name=config.class_name, code_directory=code_directory,
                            class_args=class_args, source=source, optimize_mode=optimize_mode)


def available_assessors() -> list[str]:
    """Canonical names of the built-in assessors."""
    return ASSESSORS.names()
