"""Configurations given by hand (`hpoqueue enqueue`): checked against the experiment's search space, kept
in its directory until the scheduler gives each the next free slot, before asking the tuner; the tuner
observes their results like those of its own suggestions."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hpoqueue.config.experiment_config import ExperimentConfig
from hpoqueue.errors import ConfigError, SearchSpaceError, read_text
from hpoqueue.tuners import BaseTuner, create_tuner

QUEUE_FILE = "enqueued.json"


def read_params(arg: str) -> tuple[list[dict[str, Any]], str]:
    """The configurations `arg` gives: inline JSON (an object, or a list of them) or a JSON file's; and
    what to call their source in messages."""
    inline = arg.lstrip().startswith(("{", "["))
    source = "the parameters given" if inline else os.path.abspath(arg)
    text = arg if inline else read_text(Path(arg), ConfigError, "parameter file",
                                        "give a JSON file, or a JSON object such as '{\"lr\": 0.1}'")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not valid JSON ({exc})", source=source) from None
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"each configuration must be a JSON object of parameters, not {item!r}",
                              source=source, field=f"[{i}]" if isinstance(value, list) else None)
    if not items:
        raise ConfigError("no configuration given (an empty list)", source=source)
    return items, source


def experiment_tuner(config: ExperimentConfig) -> BaseTuner:
    """A fresh instance of the experiment's tuner, as its scheduler builds it."""
    return create_tuner(config.tuner, config.search_space, optimize_mode=config.optimize_mode, seed=config.seed,
                        source=config.source)


def refuse_self_managed(tuner: BaseTuner, config: ExperimentConfig, what: str) -> None:
    """Tuners that add their own keys to each trial (budgets, checkpoints) cannot take trials from outside."""
    if tuner.extra_params:
        name = config.tuner.name or config.tuner.class_name
        raise ConfigError(f"{what} is not possible with tuner {name}: it manages its own trials (it adds "
                          f"{', '.join(sorted(tuner.extra_params))} to each)",
                          hint="use Random, GridSearch, TPE, Anneal, Evolution or GP")


def fit_problem(tuner: BaseTuner, params: dict[str, Any]) -> str | None:
    """Why `params` is not a configuration of the tuner's search space, or None when it is one."""
    check = getattr(tuner, "check_params", None)  # a tuner whose trials are not values of the space (Batch)
    try:
        if check is not None:
            check(params)
            return None
        unknown = sorted(set(params) - set(tuner.space.names()))
        if unknown:
            return f"{unknown[0]!r} is not a parameter of the search space (it has {', '.join(tuner.space.names())})"
        tuner.space.validate_params(params)
    except SearchSpaceError as exc:
        return ": ".join(p for p in (exc.field, exc.problem) if p)
    return None


def check_params(config: ExperimentConfig, items: list[dict[str, Any]], source: str) -> None:
    """Refuse, naming the first bad one, configurations the experiment's tuner cannot take."""
    tuner = experiment_tuner(config)
    refuse_self_managed(tuner, config, "enqueueing configurations")
    for i, params in enumerate(items):
        problem = fit_problem(tuner, params)
        if problem is not None:
            raise ConfigError(f"does not fit the experiment's search space: {problem}", source=source,
                              field=f"[{i}]" if len(items) > 1 else None)


class ManualQueue:
    """The configurations waiting in an experiment's directory (a JSON list, the owner's alone), locked
    against the CLI and the scheduler writing at once."""

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / QUEUE_FILE

    @contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            items = json.loads(self.path.read_text()) if self.path.exists() else []
            before = list(items)
            yield items
            if items != before:
                tmp = self.path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    json.dump(items, out)
                os.replace(tmp, self.path)
        finally:
            os.close(lock)

    def add(self, items: list[dict[str, Any]]) -> int:
        """Queue `items` after those waiting; returns how many wait now."""
        with self._locked() as queued:
            queued.extend(items)
            return len(queued)

    def peek(self, n: int) -> list[dict[str, Any]]:
        """Up to `n` waiting configurations, first in first out, left in the queue until drop(): one taken by
        a scheduler killed before recording it runs after `resume` instead of being lost."""
        if n <= 0 or not self.path.exists():
            return []
        with self._locked() as queued:
            return queued[:n]

    def drop(self, n: int) -> None:
        """Remove the first `n` configurations, once their trials are recorded (only the scheduler removes,
        and `add` appends, so they are the ones peek() gave)."""
        if n <= 0:
            return
        with self._locked() as queued:
            del queued[:n]

    def pending(self) -> int:
        """How many configurations wait."""
        if not self.path.exists():
            return 0
        with self._locked() as queued:
            return len(queued)
