"""The checks `submit` makes before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.errors import ConfigError
from hpoqueue.experiment.launch import check
from hpoqueue.worker import code_bundle


def _config(code: Path) -> object:
    return config_from_dict({"trialCommand": "python train.py", "trialCodeDirectory": str(code),
                             "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}, "shipCode": True,
                             "trialConcurrency": 1, "maxTrialNumber": 1,
                             "experimentWorkingDirectory": str(code / "experiments"),
                             "trainingService": {"platform": "local"}}, source="exp.yml")


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)


def test_the_size_check_leaves_out_hpoqueues_own_database_and_experiments(tmp_path: Path) -> None:
    # HPOQUEUE_HOME inside the code directory: its database and experiments are never shipped, so never counted
    code = tmp_path / "code"
    (code / "experiments" / "old").mkdir(parents=True)
    (code / "train.py").write_text("")
    for own in ("hpoqueue.db", "hpoqueue.db-wal", "experiments/old/scheduler.log"):
        _sparse(code / own, code_bundle.MAX_BYTES)
    config = _config(code)
    assert check(config, storage_url=f"sqlite:///{code / 'hpoqueue.db'}") is None  # type: ignore[arg-type]
    _sparse(code / "weights.bin", code_bundle.MAX_BYTES + 1)  # the trial's own files still count
    with pytest.raises(ConfigError, match="trialCodeDirectory: .* holds more than .* MiB.*weights.bin"):
        check(config, storage_url=f"sqlite:///{code / 'hpoqueue.db'}")  # type: ignore[arg-type]
