"""NNI's files move over: every spelling NNI accepts, one line for other platforms and tuners, constant
ranges, and custom tuners written against `nni.tuner.Tuner` (configs in tests/data/nni, our own making)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from hpoqueue.config.experiment_config import AlgorithmConfig, load_config
from hpoqueue.errors import ConfigError
from hpoqueue.nni_compat.tuner import NniTunerAdapter
from hpoqueue.results.records import TrialResult
from hpoqueue.space import SearchSpace
from hpoqueue.states import TrialState
from hpoqueue.tuners import create_tuner

DATA = Path(__file__).parent.parent / "data" / "nni"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("name", ["snake_case.yml", "mixed_case.yml"])
def test_every_spelling_nni_accepts_reads_as_camel_case(name: str) -> None:
    reference = load_config(DATA / "camel_case.yml")
    config = load_config(DATA / name)
    assert config == reference
    assert config.tuner.class_args == {"optimize_mode": "maximize"}  # classArgs' own keys are kept as written
    assert (config.training_service.gpu_indices, config.optimize_mode) == ((0, 1), "maximize")


def test_two_spellings_of_one_field_are_refused(tmp_path: Path) -> None:
    text = (DATA / "camel_case.yml").read_text() + "trial_concurrency: 3\n"
    (tmp_path / "both.yml").write_text(text)
    (tmp_path / "search_space.json").write_text((DATA / "search_space.json").read_text())
    with pytest.raises(ConfigError, match="'trialConcurrency' and 'trial_concurrency' are the same field"):
        load_config(tmp_path / "both.yml")


@pytest.mark.parametrize(("name", "where", "platform"), [
    ("kubeflow_v1.yml", "trainingServicePlatform", "kubeflow"),
    ("frameworkcontroller_section_only.yml", "frameworkcontrollerConfig", "frameworkcontroller"),
    ("openpai_v2.yml", "trainingService.platform", "openpai"),
    ("aml_snake_case.yml", "trainingService.platform", "aml"),
    ("hybrid_v2.yml", "trainingService", "hybrid"),
])
def test_a_platform_hpoqueue_does_not_run_is_named_first(name: str, where: str, platform: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / name)
    message = str(info.value)
    assert message.startswith(f"{DATA / name}: {where}: platform '{platform}' is not supported (")
    assert "platform: local" in message and "\n" not in message


@pytest.mark.parametrize(("tuner", "nearest"), [
    ("SMAC", "TPE"), ("Metis", "GP"), ("DNGO", "GP"), ("NetworkMorphism", "Evolution"), ("PPOTuner", "Evolution"),
    ("RegularizedEvolution", "Evolution"),
])
def test_an_nni_tuner_hpoqueue_lacks_is_named_with_the_nearest(tuner: str, nearest: str) -> None:
    with pytest.raises(ConfigError, match=rf"tuner.name: NNI's tuner {tuner} is not supported by hpoqueue "
                                          rf"\(the nearest here is {nearest}\b"):
        load_config(DATA / f"tuner_{tuner}.yml")


def test_a_range_with_low_equal_to_high_is_that_constant_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpoqueue"):
        space = SearchSpace.from_file(DATA / "constant_ranges.json")
    messages = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(messages) == 3 and "low == high, so dropout is always 0.5" in messages[0]
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuner = create_tuner(AlgorithmConfig(name="TPE"), space, optimize_mode="minimize", seed=1)
    for suggestion in [space.sample(rng) for _ in range(5)] + [s.params for s in tuner.suggest(5)]:
        assert (suggestion["lr"], suggestion["layers"], suggestion["dropout"]) == (0.01, 3, 0.5)
        assert 0.8 <= suggestion["momentum"] <= 0.99


def test_a_custom_nni_tuner_runs_through_the_adapter(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    space = SearchSpace.from_dict({"x": {"_type": "choice", "_value": [1, 2, 3]}})
    config = AlgorithmConfig(class_name="my_tuner.ListTuner", code_directory=DATA / "custom_tuner",
                             class_args={"optimize_mode": "maximize", "log": str(log)})
    tuner = create_tuner(config, space, optimize_mode="maximize", seed=None)
    assert isinstance(tuner, NniTunerAdapter)
    first = tuner.suggest(2)
    assert [s.params for s in first] == [{"x": 1}, {"x": 2}]
    assert [s.params for s in tuner.suggest(5)] == [{"x": 3}] and tuner.exhausted
    tuner.observe(TrialResult(seq=2, params={"x": 2}, state=TrialState.SUCCEEDED, value=0.5))
    tuner.observe(TrialResult(seq=1, params={"x": 1}, state=TrialState.FAILED))
    tuner.observe(TrialResult(seq=4, params={"x": 9}, state=TrialState.SUCCEEDED, value=0.7))  # enqueued by hand
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [["space", ["x"], os.getpid()], ["result", 1, {"x": 2}, 0.5, False], ["end", 1, True],
                     ["end", 0, False], ["result", 3, {"x": 9}, 0.7, True], ["end", 3, True]]


def test_a_class_that_is_neither_tuner_kind_is_refused_in_one_line() -> None:
    config = AlgorithmConfig(class_name="json.JSONDecoder")
    space = SearchSpace.from_dict({"x": {"_type": "choice", "_value": [1]}})
    with pytest.raises(ConfigError, match="'json.JSONDecoder' is not a subclass of BaseTuner"):
        create_tuner(config, space, optimize_mode="minimize", seed=None)
