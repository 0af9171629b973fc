"""Enqueued configurations and new search spaces are checked against the experiment's tuner before
anything is written; tuners that cannot take them are refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.errors import ConfigError
from hpoqueue.experiment.manual_trials import ManualQueue, check_params, read_params
from hpoqueue.experiment.space_update import check

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}, "n": {"_type": "choice", "_value": [1, 2]}}


def config(tuner: str, space: dict | None = None) -> object:
    return config_from_dict({"trialCommand": "true", "trialConcurrency": 1, "searchSpace": space or SPACE,
                             "tuner": {"name": tuner}}, source="exp.yml")


def test_configurations_are_read_inline_or_from_a_file(tmp_path: Path) -> None:
    assert read_params('{"x": 0.5, "n": 1}') == ([{"x": 0.5, "n": 1}], "the parameters given")
    (tmp_path / "p.json").write_text('[{"x": 0.1, "n": 2}, {"x": 0.2, "n": 1}]')
    assert read_params(str(tmp_path / "p.json"))[0] == [{"x": 0.1, "n": 2}, {"x": 0.2, "n": 1}]
    for bad, message in (("{x: 1}", "not valid JSON"), ("[1]", "must be a JSON object"), ("[]", "no configuration"),
                         (str(tmp_path / "missing.json"), "cannot read the parameter file")):
        with pytest.raises(ConfigError, match=message):
            read_params(bad)


@pytest.mark.parametrize(("params", "message"), [
    ({"x": 2.0, "n": 1}, r"\[1\]: does not fit the experiment's search space: x: .*outside"),
    ({"x": 0.5}, r"\[1\]: does not fit .*n: parameter is missing"),
    ({"x": 0.5, "n": 1, "lr": 3}, r"'lr' is not a parameter of the search space"),
])
def test_a_configuration_outside_the_space_is_refused(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_params(config("TPE"), [{"x": 0.5, "n": 2}, params], "p.json")  # type: ignore[arg-type]


def test_tuners_that_manage_their_own_trials_refuse_them() -> None:
    with pytest.raises(ConfigError, match="enqueueing configurations is not possible with tuner Hyperband: it manages "
                                          "its own trials .it adds TRIAL_BUDGET"):
        check_params(config("Hyperband"), [{"x": 0.5, "n": 1}], "p")  # type: ignore[arg-type]


def test_a_new_space_is_refused_by_tuners_that_cannot_take_it_or_when_a_running_trial_leaves_it() -> None:
    new = {"x": {"_type": "uniform", "_value": [0, 2]}, "n": {"_type": "choice", "_value": [1, 2, 3]}}
    assert check(config("GP"), new, [{"x": 1.5, "n": 3}], "s.json").search_space.raw == new  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tuner BOHB cannot take a new search space while it runs"):
        check(config("BOHB"), new, [], "s.json")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"a running trial's parameters .* do not fit it: x: .*outside"):
        check(config("TPE"), SPACE | {"x": {"_type": "uniform", "_value": [0, 0.5]}}, [{"x": 0.7, "n": 1}],  # type: ignore[arg-type]
              "s.json")


def test_the_queue_hands_configurations_out_first_in_first_out(tmp_path: Path) -> None:
    queue = ManualQueue(tmp_path)
    assert queue.peek(3) == [] and queue.pending() == 0
    assert queue.add([{"x": 1}, {"x": 2}]) == 2 and queue.add([{"x": 3}]) == 3
    assert queue.peek(2) == [{"x": 1}, {"x": 2}] and queue.pending() == 3  # left until recorded
    queue.drop(2)
    assert queue.peek(5) == [{"x": 3}] and queue.pending() == 1
    assert (tmp_path / "enqueued.json").stat().st_mode & 0o077 == 0  # the owner's alone
