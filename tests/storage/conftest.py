"""Fixtures for storage tests: an open Storage on every backend, and a factory for experiments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hpoqueue.storage import ExperimentRecord, Storage

MakeExperiment = Callable[..., ExperimentRecord]


def _new_experiment(store: Storage, exp_id: str = "exp1", **overrides: Any) -> ExperimentRecord:
    settings: dict[str, Any] = dict(name="demo", config={"trialCommand": "python train.py"},
                                    work_dir="/tmp/work", optimize_mode="maximize", concurrency=2,
                                    max_trial_number=10, max_duration=3600.0)
    settings.update(overrides)
    return store.create_experiment(exp_id, **settings)


@pytest.fixture
def make_experiment() -> MakeExperiment:
    """``make_experiment(store, exp_id="exp1", **overrides)``: an experiment with plausible settings."""
    return _new_experiment


@pytest.fixture
def store(storage_url: str) -> Iterator[Storage]:
    storage = Storage(storage_url)
    yield storage
    storage.close()


@pytest.fixture
def exp(store: Storage) -> ExperimentRecord:
    return _new_experiment(store)
