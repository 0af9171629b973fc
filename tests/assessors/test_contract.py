"""What every registered assessor promises: a Decision for any history, and config errors users can fix."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.assessors import ASSESSORS, Decision, available_assessors, create_assessor
from hpoqueue.errors import ConfigError
from hpoqueue.states import TrialState

from . import trial

MODES = ["minimize", "maximize"]


@dataclass
class Config:
    name: str | None = None
    class_name: str | None = None
    code_directory: str | Path | None = None
    class_args: dict[str, Any] = field(default_factory=dict)


def test_builtins_are_registered() -> None:
    assert available_assessors() == ["Medianstop", "Curvefitting", "ASHA"]
    medianstop = create_assessor(Config("MedianStop"), optimize_mode="maximize")
    assert type(medianstop) is ASSESSORS.resolve("medianstop")


@pytest.fixture(params=ASSESSORS.names())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


MIXED_HISTORY = [
    trial(1, [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.38, 0.36, 0.35]),
    trial(2, [0.5, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05]),
    trial(3, [1.0, 2.0], TrialState.FAILED),
    trial(4, [], TrialState.FAILED),
    trial(5, [0.3] * 15, TrialState.LOST),
    trial(6, [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], TrialState.RUNNING),
    trial(7, [0.6, 0.6, 0.6], TrialState.EARLY_STOPPED, value=0.6),
    trial(8, [], TrialState.WAITING),
    trial(9, [], TrialState.SUCCEEDED, value=0.2),
    trial(10, [0.1, 0.2], TrialState.USER_CANCELED),
]


@pytest.mark.parametrize("mode", MODES)
def test_decides_for_any_history(name: str, mode: str) -> None:
    assessor = create_assessor(Config(name), optimize_mode=mode)
    curves = [[], [0.5], [0.9, 0.8, 0.7], [0.9 - 0.05 * i for i in range(12)], [5.0] * 30]
    for curve in curves:
        running = trial(99, curve, TrialState.RUNNING)
        for history in ([], MIXED_HISTORY, MIXED_HISTORY[2:5]):
            assert isinstance(assessor.assess(running, history), Decision)


@pytest.mark.parametrize("mode", MODES)
def test_continues_a_trial_with_no_results(name: str, mode: str) -> None:
    assessor = create_assessor(Config(name), optimize_mode=mode)
    assert assessor.assess(trial(99, [], TrialState.RUNNING), MIXED_HISTORY) is Decision.CONTINUE


@pytest.mark.parametrize("mode", MODES)
def test_continues_with_empty_history(name: str, mode: str) -> None:
    assessor = create_assessor(Config(name), optimize_mode=mode)
    bad = trial(99, [100.0, -100.0] * 10, TrialState.RUNNING)
    assert assessor.assess(bad, []) is Decision.CONTINUE


def test_optimize_mode_comes_from_the_experiment(name: str) -> None:
    config = Config(name, class_args={"optimize_mode": "minimize"})
    assessor = create_assessor(config, optimize_mode="maximize")
    assert assessor.optimize_mode == "maximize"


def test_unknown_class_arg_names_the_field(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_assessor(Config(name, class_args={"no_such_arg": 1}), optimize_mode="minimize",
                        source="exp.yml")
    assert err.value.field == "assessor.classArgs.no_such_arg"
    assert str(err.value).startswith("exp.yml: assessor.classArgs.no_such_arg:")


def test_bad_class_arg_value_is_a_config_error(name: str) -> None:
    params = inspect.signature(ASSESSORS.resolve(name).__init__).parameters
    for arg in [p for p in params if p not in ("self", "optimize_mode")]:
        with pytest.raises(ConfigError) as err:
            create_assessor(Config(name, class_args={arg: -5}), optimize_mode="minimize")
        assert err.value.field == "assessor.classArgs" and arg in str(err.value)


@pytest.mark.parametrize("name", ASSESSORS.names())
def test_each_builtin_is_exported_by_its_class_name(name: str) -> None:
    """Registered in one line, each assessor is also `from hpoqueue.assessors import ItsClass`."""
    import hpoqueue.assessors

    cls = ASSESSORS.resolve(name)
    assert cls.__name__ in hpoqueue.assessors.__all__
    assert getattr(hpoqueue.assessors, cls.__name__) is cls


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'Medianstop'"):
        create_assessor(Config("Medianstp"), optimize_mode="minimize")


def test_user_class_by_class_name(tmp_path: Path) -> None:
    (tmp_path / "my_assessor_mod.py").write_text(
        "from hpoqueue.assessors import BaseAssessor, Decision\n"
        "class Always(BaseAssessor):\n"
        "    def __init__(self, *, optimize_mode='minimize', verdict='STOP'):\n"
        "        super().__init__(optimize_mode=optimize_mode)\n"
        "        self.verdict = Decision(verdict)\n"
        "    def assess(self, trial, history):\n"
        "        return self.verdict\n")
    config = Config(class_name="my_assessor_mod.Always", code_directory=str(tmp_path),
                    class_args={"verdict": "CONTINUE"})
    assessor = create_assessor(config, optimize_mode="maximize")
    assert assessor.assess(trial(1, [1.0], TrialState.RUNNING), []) is Decision.CONTINUE
