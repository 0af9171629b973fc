"""BatchTuner: the listed configurations, verbatim and in order; any other space is a clear error."""

from __future__ import annotations

import pytest

from hpoqueue.errors import SearchSpaceError
from hpoqueue.space import SearchSpace
from hpoqueue.tuners import BatchTuner, create_tuner

CONFIGS = [{"optimizer": "Adam", "lr": 0.001}, {"optimizer": "SGD", "lr": 0.01},
           {"optimizer": "SGD", "lr": 0.1}]


def batch_space(configs: list) -> SearchSpace:
    return SearchSpace.from_dict({"combine_params": {"_type": "choice", "_value": configs}},
                                 source="space.json")


def test_hands_out_each_configuration_in_order_then_is_exhausted() -> None:
    tuner = BatchTuner(batch_space(CONFIGS))
    got = [s.params for s in tuner.suggest(2)] + [s.params for s in tuner.suggest(5)]
    assert got == CONFIGS
    assert tuner.exhausted and tuner.suggest(1) == []


def test_rebuild_skips_configurations_already_created() -> None:
    tuner = BatchTuner(batch_space(CONFIGS))
    tuner.mark_pending(CONFIGS[1])
    assert [s.params for s in tuner.suggest(5)] == [CONFIGS[0], CONFIGS[2]]


@pytest.mark.parametrize(("raw", "field"), [
    ({"a": {"_type": "choice", "_value": [{"x": 1}]}, "b": {"_type": "choice", "_value": [1]}},
     "searchSpace"),
    ({"a": {"_type": "uniform", "_value": [0, 1]}}, "searchSpace.a"),
    ({"a": {"_type": "choice", "_value": [{"x": 1}, 2]}}, "searchSpace.a._value"),
])
def test_other_spaces_are_rejected_naming_the_field(raw: dict, field: str) -> None:
    class Algo:
        name, class_name, code_directory, class_args = "BatchTuner", None, None, None

    space = SearchSpace.from_dict(raw, source="space.json")
    with pytest.raises(SearchSpaceError) as err:
        create_tuner(Algo(), space, optimize_mode="minimize", seed=None)
    assert err.value.field == field and err.value.source == "space.json"
    assert "combine_params" in str(err.value)  # the hint shows the expected shape
