"""The tuner registry (NNI names, case-insensitive) and `create_tuner`, which builds one from its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from hpoqueue.registry import Registry
from hpoqueue.space import SearchSpace
from hpoqueue.tuners._base import BaseTuner, OptimizeMode

TUNERS: Registry[BaseTuner] = Registry("tuner", BaseTuner)

#: classArgs that NNI configs carry but hpoqueue passes as explicit arguments instead.
_CONTEXT_ARGS = frozenset({"optimize_mode", "seed"})


class AlgorithmConfigLike(Protocol):
    """What `create_tuner` reads from a config's ``tuner`` section (hpoqueue.config.AlgorithmConfig)."""

    name: str | None
    class_name: str | None
    code_directory: Path | None
    class_args: dict[str, Any] | None


def create_tuner(config: AlgorithmConfigLike, space: SearchSpace, *, optimize_mode: OptimizeMode,
                 seed: int | None, source: str | None = None) -> BaseTuner:
    """Build the tuner named by `config` (built-in `name` or user `className`) for `space`.

    ``optimize_mode`` and ``seed`` are dropped from classArgs: the caller passes them explicitly.
    """
    class_args = {k: v for k, v in (config.class_args or {}).items() if k not in _CONTEXT_ARGS}
    return TUNERS.create(name=config.name, class_name=config.class_name,
                         code_directory=config.code_directory, class_args=class_args, source=source,
                         space=space, optimize_mode=optimize_mode, seed=seed)


def available_tuners() -> list[str]:
    """Canonical names of the built-in tuners, in registration order."""
    return TUNERS.names()
