"""Search spaces: NNI sampling semantics, validation messages, grids, sizes and the [0,1]^d encoding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hpoqueue.errors import SearchSpaceError
from hpoqueue.space import TYPES, SearchSpace

N = 2000

V1_SPACE = {
    "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128]},
    "hidden_size": {"_type": "choice", "_value": [128, 256, 512, 1024]},
    "lr": {"_type": "choice", "_value": [0.0001, 0.001, 0.01, 0.1]},
    "momentum": {"_type": "uniform", "_value": [0, 1]},
}

NESTED = {
    "optimizer": {"_type": "choice", "_value": [
        {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.99]},
         "schedule": {"_type": "choice", "_value": [
             {"_name": "step", "gamma": {"_type": "quniform", "_value": [0.1, 0.5, 0.1]}},
             {"_name": "none"}]}},
        {"_name": "adam", "beta1": {"_type": "loguniform", "_value": [0.8, 0.999]}},
        "rmsprop",
    ]},
    "layers": {"_type": "randint", "_value": [1, 4]},
}

#: One space per `_type`, so that every type is exercised by the generic tests below.
ONE_OF_EACH = {
    "choice": {"_type": "choice", "_value": ["a", 2, 3.5, None]},
    "randint": {"_type": "randint", "_value": [-2, 3]},
    "uniform": {"_type": "uniform", "_value": [-1.5, 2.5]},
    "quniform": {"_type": "quniform", "_value": [0, 10, 2.5]},
    "loguniform": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
    "qloguniform": {"_type": "qloguniform", "_value": [1, 1000, 10]},
    "normal": {"_type": "normal", "_value": [3, 2]},
    "qnormal": {"_type": "qnormal", "_value": [0, 5, 0.5]},
    "lognormal": {"_type": "lognormal", "_value": [0, 1]},
    "qlognormal": {"_type": "qlognormal", "_value": [2, 0.5, 1]},
}


def samples(raw: dict, n: int = N, seed: int = 0) -> list[dict]:
    space = SearchSpace.from_dict(raw)
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def values(spec: dict, n: int = N) -> list:
    return [s["x"] for s in samples({"x": spec}, n)]


def test_one_of_each_covers_every_type() -> None:
    assert set(ONE_OF_EACH) == set(TYPES)


def test_randint_never_returns_upper_and_returns_ints() -> None:
    got = values({"_type": "randint", "_value": [0, 3]})
    assert set(got) == {0, 1, 2}
    assert all(type(v) is int for v in got)


@pytest.mark.parametrize(("spec", "expected"), [
    ([0, 10, 2.5], {0.0, 2.5, 5.0, 7.5, 10.0}),
    ([2, 10, 5], {2.0, 5.0, 10.0}),
    ([0, 1, 0.1], {round(0.1 * k, 1) for k in range(11)}),
    ([1, 2, 10], {1.0}),
])
def test_quniform_values_are_nni_exact(spec: list, expected: set) -> None:
    raw = {"_type": "quniform", "_value": spec}
    got = values(raw)
    assert set(got) == expected
    assert all(isinstance(v, float) for v in got)
    space = SearchSpace.from_dict({"x": raw})
    assert space.size == len(expected)
    assert {c["x"] for c in space.grid()} == expected


def test_uniform_and_log_types_stay_within_bounds() -> None:
    u = values({"_type": "uniform", "_value": [-1.5, 2.5]})
    assert min(u) >= -1.5 and max(u) <= 2.5 and np.std(u) > 0.5
    lu = values({"_type": "loguniform", "_value": [1e-5, 1e-1]})
    assert min(lu) >= 1e-5 and max(lu) <= 1e-1
    # log-uniform: the median sits near the geometric mean, not the arithmetic one
    assert 1e-4 < float(np.median(lu)) < 1e-2
    qlu = values({"_type": "qloguniform", "_value": [1, 1000, 10]})
    assert min(qlu) >= 1 and max(qlu) <= 1000
    assert all(v == 1 or v % 10 == 0 for v in qlu)


def test_normal_types_follow_their_parameters() -> None:
    n = values({"_type": "normal", "_value": [3, 2]})
    assert abs(np.mean(n) - 3) < 0.2 and abs(np.std(n) - 2) < 0.2
    qn = values({"_type": "qnormal", "_value": [0, 5, 0.5]})
    assert all(math.isclose(v / 0.5, round(v / 0.5)) for v in qn)
    ln = values({"_type": "lognormal", "_value": [0, 1]})
    assert min(ln) > 0 and abs(np.mean(np.log(ln))) < 0.1
    qln = values({"_type": "qlognormal", "_value": [2, 0.5, 1]})
    assert all(v >= 0 and v == int(v) for v in qln)


def test_nested_choice_returns_name_and_sub_params() -> None:
    got = [s["optimizer"] for s in samples(NESTED)]
    assert {o["_name"] if isinstance(o, dict) else o for o in got} == {"sgd", "adam", "rmsprop"}
    for o in got:
        if isinstance(o, dict) and o["_name"] == "sgd":
            assert set(o) == {"_name", "momentum", "schedule"}
            assert 0.5 <= o["momentum"] <= 0.99
            assert o["schedule"]["_name"] in ("step", "none")
        elif isinstance(o, dict):
            assert set(o) == {"_name", "beta1"} and 0.8 <= o["beta1"] <= 0.999


def test_constant_dict_options_are_values_as_in_the_batch_tuner() -> None:
    raw = {"combo": {"_type": "choice", "_value": [{"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 64}]}}
    space = SearchSpace.from_dict(raw)
    assert space.size == 2
    assert [c["combo"] for c in space.grid()] == raw["combo"]["_value"]
    picked = space.sample(np.random.default_rng(1))["combo"]
    picked["lr"] = 99  # a copy: mutating it leaves the space alone
    assert space.raw == raw and raw["combo"]["_value"][0]["lr"] == 0.1


def test_sampling_is_reproducible_with_the_same_seed() -> None:
    raw = {**ONE_OF_EACH, **NESTED}
    assert samples(raw, 50, seed=7) == samples(raw, 50, seed=7)
    assert samples(raw, 50, seed=7) != samples(raw, 50, seed=8)


@pytest.mark.parametrize("raw", [ONE_OF_EACH, NESTED, V1_SPACE], ids=["each-type", "nested", "v1"])
def test_encode_decode_round_trip(raw: dict) -> None:
    space = SearchSpace.from_dict(raw)
    rng = np.random.default_rng(3)
    for _ in range(300):
        params = space.sample(rng)
        x = space.encode(params)
        assert x.shape == (space.dim,) and np.all((x >= 0) & (x <= 1))
        back = space.decode(x)
        assert space.key(back) == space.key(params), (params, back)
        space.validate_params(back)


def test_every_type_samples_valid_params_that_round_trip() -> None:
    for name, spec in ONE_OF_EACH.items():
        space = SearchSpace.from_dict({"x": spec})
        rng = np.random.default_rng(5)
        for _ in range(200):
            p = space.sample(rng)
            space.validate_params(p)
            assert space.key(space.decode(space.encode(p))) == space.key(p), name


def test_dims_describe_the_encoding() -> None:
    space = SearchSpace.from_dict(NESTED)
    dims = {d.path: d for d in space.dims}
    assert list(dims) == ["optimizer", "optimizer/sgd/momentum", "optimizer/sgd/schedule",
                          "optimizer/sgd/schedule/step/gamma", "optimizer/adam/beta1", "layers"]
    assert dims["optimizer"].kind == "categorical" and dims["optimizer"].n_choices == 3
    assert dims["optimizer"].choices == ("sgd", "adam", "rmsprop")
    assert dims["optimizer/adam/beta1"].log and dims["optimizer/adam/beta1"].parent == "optimizer"
    assert dims["optimizer/adam/beta1"].parent_option == 1
    assert dims["layers"].kind == "integer" and (dims["layers"].low, dims["layers"].high) == (1, 4)
    assert dims["optimizer/sgd/schedule/step/gamma"].q == 0.1
    assert space.dim == sum(d.width for d in space.dims) == 3 + 1 + 2 + 1 + 1 + 1
    assert [d.start for d in space.dims] == [0, 3, 4, 6, 7, 8]


def test_inactive_nested_dims_encode_as_half_and_are_ignored() -> None:
    space = SearchSpace.from_dict(NESTED)
    x = space.encode({"optimizer": "rmsprop", "layers": 2})
    assert list(x[:3]) == [0, 0, 1]
    assert np.all(x[3:8] == 0.5)
    x[3:8] = np.random.default_rng(0).random(5)
    assert space.decode(x) == {"optimizer": "rmsprop", "layers": 2}


def test_decode_clips_rounds_and_takes_argmax() -> None:
    space = SearchSpace.from_dict({"c": {"_type": "choice", "_value": ["a", "b", "c"]},
                                   "i": {"_type": "randint", "_value": [0, 5]},
                                   "q": {"_type": "quniform", "_value": [0, 10, 2.5]},
                                   "u": {"_type": "uniform", "_value": [0, 1]}})
    assert space.decode(np.array([0.2, 0.9, 0.3, 1.0, 0.33, 7.0])) == {"c": "b", "i": 4, "q": 2.5, "u": 1.0}
    assert space.decode(np.array([0.2, 0.1, 0.3, -1.0, 0.0, -3.0])) == {"c": "c", "i": 0, "q": 0.0, "u": 0.0}


def test_encoding_scales() -> None:
    space = SearchSpace.from_dict({"lu": {"_type": "loguniform", "_value": [1e-4, 1]},
                                   "n": {"_type": "normal", "_value": [10, 2]}})
    x = space.encode({"lu": 1e-2, "n": 10.0})
    assert x == pytest.approx([0.5, 0.5])


def test_grid_of_the_v1_example_space() -> None:
    space = SearchSpace.from_dict(V1_SPACE)
    assert space.size is None
    for points in (1, 2, 5):
        grid = space.grid(points)
        assert len(grid) == 4 * 4 * 4 * points
        assert len({space.key(c) for c in grid}) == len(grid)
    assert sorted({c["momentum"] for c in space.grid(3)}) == [0.0, 0.5, 1.0]
    assert {c["momentum"] for c in space.grid(1)} == {0.5}
    with pytest.raises(SearchSpaceError, match="points > 0"):
        space.grid()


def test_grid_and_size_of_a_nested_finite_space() -> None:
    raw = {"opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "m": {"_type": "quniform", "_value": [0, 1, 0.5]}, "n": {"_type": "randint",
                                                                               "_value": [0, 2]}},
        {"_name": "adam"}, 7, 7]},
        "k": {"_type": "randint", "_value": [0, 3]}}
    space = SearchSpace.from_dict(raw)
    assert space.size == (3 * 2 + 1 + 1) * 3
    grid = space.grid()
    assert len(grid) == space.size == len({space.key(c) for c in grid})
    for c in grid:
        space.validate_params(c)
    assert {"opt": {"_name": "adam"}, "k": 2} in grid


def test_grid_of_normal_types_uses_quantiles() -> None:
    space = SearchSpace.from_dict({"n": {"_type": "normal", "_value": [0, 1]}})
    got = [c["n"] for c in space.grid(4)]
    assert len(got) == 4 and got == sorted(got) and got[0] == pytest.approx(-got[-1])


def test_empty_space_has_one_empty_config() -> None:
    space = SearchSpace.from_dict({})
    assert space.size == 1 and space.grid() == [{}] and space.dim == 0
    assert space.sample(np.random.default_rng(0)) == {}
    assert space.decode(space.encode({})) == {}


def test_key_is_canonical() -> None:
    space = SearchSpace.from_dict(V1_SPACE)
    a = {"lr": 0.1, "momentum": 0.1 + 0.2, "batch_size": 16.0, "hidden_size": np.int64(128)}
    b = {"hidden_size": 128, "batch_size": 16, "momentum": 0.3, "lr": 0.1}
    assert space.key(a) == space.key(b)
    assert json.loads(space.key(a)) == {"batch_size": 16, "hidden_size": 128, "lr": 0.1, "momentum": 0.3}
    assert space.key({"x": 0.3}) != space.key({"x": 0.31})


def test_names_in_declared_order() -> None:
    assert SearchSpace.from_dict(V1_SPACE).names() == ["batch_size", "hidden_size", "lr", "momentum"]


@pytest.mark.parametrize(("params", "field"), [
    ({"optimizer": "rmsprop"}, "layers"),
    ({"optimizer": "rmsprop", "layers": 4}, "layers"),
    ({"optimizer": "rmsprop", "layers": 1.5}, "layers"),
    ({"optimizer": "rmsprop", "layers": True}, "layers"),
    ({"optimizer": "rmsprop", "layers": 1, "extra": 1}, "extra"),
    ({"optimizer": "adagrad", "layers": 1}, "optimizer"),
    ({"optimizer": {"_name": "adam", "beta1": 0.5}, "layers": 1}, "optimizer.beta1"),
    ({"optimizer": {"_name": "adam"}, "layers": 1}, "optimizer.beta1"),
    ({"optimizer": {"_name": "sgd", "momentum": 0.6, "schedule": {"_name": "step", "gamma": 0.25}},
      "layers": 1}, "optimizer.schedule.gamma"),
])
def test_validate_params_rejects_what_the_space_cannot_produce(params: dict, field: str) -> None:
    space = SearchSpace.from_dict(NESTED)
    with pytest.raises(SearchSpaceError) as info:
        space.validate_params(params)
    assert info.value.field == field


def test_validate_params_accepts_json_round_tripped_values() -> None:
    space = SearchSpace.from_dict({**ONE_OF_EACH, **NESTED})
    rng = np.random.default_rng(11)
    for _ in range(100):
        space.validate_params(json.loads(json.dumps(space.sample(rng))))


def u(v: list) -> dict:
    return {"_type": "uniform", "_value": v}


BAD = [
    ([1, 2], "searchSpace", "mapping"),
    ({"lr": [0, 1]}, "searchSpace.lr", "spec"),
    ({"lr": {"_value": [0, 1]}}, "searchSpace.lr", "missing '_type'"),
    ({"lr": {"_type": "uniform"}}, "searchSpace.lr", "missing '_value'"),
    ({"lr": {"_type": "uniform", "_value": [0, 1], "_vlaue": 1}}, "searchSpace.lr._vlaue", "unknown key"),
    ({"lr": {"_type": "unifrom", "_value": [0, 1]}}, "searchSpace.lr._type", "did you mean 'uniform'"),
    ({"lr": {"_type": "uniform", "_value": 1}}, "searchSpace.lr._value", "must be a list"),
    ({"lr": u([0, 1, 2])}, "searchSpace.lr._value", "takes [low, high]"),
    ({"lr": {"_type": "quniform", "_value": [0, 1]}}, "searchSpace.lr._value", "takes [low, high, q]"),
    ({"lr": {"_type": "normal", "_value": [0]}}, "searchSpace.lr._value", "takes [mu, sigma]"),
    ({"lr": u([1, 0])}, "searchSpace.lr._value", "below high"),
    ({"lr": u(["a", 1])}, "searchSpace.lr._value[0]", "finite number"),
    ({"lr": u([0, True])}, "searchSpace.lr._value[1]", "finite number"),
    ({"lr": {"_type": "quniform", "_value": [0, 1, 0]}}, "searchSpace.lr._value[2]", "q must be > 0"),
    ({"lr": {"_type": "qnormal", "_value": [0, 1, -1]}}, "searchSpace.lr._value[2]", "q must be > 0"),
    ({"lr": {"_type": "loguniform", "_value": [0, 1]}}, "searchSpace.lr._value[0]", "low > 0"),
    ({"lr": {"_type": "qloguniform", "_value": [-1, 1, 0.1]}}, "searchSpace.lr._value[0]", "low > 0"),
    ({"lr": {"_type": "normal", "_value": [0, 0]}}, "searchSpace.lr._value[1]", "sigma must be > 0"),
    ({"lr": {"_type": "lognormal", "_value": [0, -1]}}, "searchSpace.lr._value[1]", "sigma must be > 0"),
    ({"lr": {"_type": "choice", "_value": []}}, "searchSpace.lr._value", "at least one option"),
    ({"o": {"_type": "choice", "_value": [{"m": u([0, 1])}]}}, "searchSpace.o._value[0]", "needs a '_name'"),
    ({"o": {"_type": "choice", "_value": [{"_name": "a"}, {"_name": "a"}]}}, "searchSpace.o._value[1]._name",
     "duplicate _name"),
    ({"o": {"_type": "choice", "_value": [{"_name": "a", "m": u([1, 0])}]}},
     "searchSpace.o._value[0].m._value", "below high"),
    ({"o": {"_type": "choice", "_value": [{"_name": "a", "m": 3}]}}, "searchSpace.o._value[0].m", "spec"),
    ({"n": {"_type": "randint", "_value": [0, 2.5]}}, "searchSpace.n._value[1]", "integers"),
    ({"_name": u([0, 1])}, "searchSpace._name", "may not start with '_'"),
]


@pytest.mark.parametrize(("raw", "field", "text"), BAD, ids=[f"{b[1]}-{b[2]}" for b in BAD])
def test_bad_spaces_name_source_and_field(raw: object, field: str, text: str) -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(raw, source="space.json")
    assert info.value.field == field
    assert info.value.source == "space.json"
    assert text in str(info.value) and str(info.value).startswith(f"space.json: {field}: ")


def test_from_file_reads_json_and_yaml(tmp_path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(V1_SPACE))
    (tmp_path / "s.yml").write_text("lr: {_type: loguniform, _value: [0.0001, 0.1]}\n")
    assert SearchSpace.from_file(tmp_path / "s.json").raw == V1_SPACE
    assert SearchSpace.from_file(str(tmp_path / "s.yml")).names() == ["lr"]
    # a JSON file with exponents: PyYAML would read 1e-4 as a string, json does not
    (tmp_path / "e.json").write_text('{"lr": {"_type": "choice", "_value": [1e-4, 1e-3]}}')
    assert SearchSpace.from_file(tmp_path / "e.json").dims[0].choices == (1e-4, 1e-3)


@pytest.mark.parametrize(("name", "content", "text"), [
    ("missing.json", None, "cannot read"),
    ("broken.json", '{"lr": {"_type": "uniform",\n "_value": [0, 1]', "invalid JSON at line 2"),
    ("broken.yaml", "lr: [1, 2\n", "invalid YAML"),
    ("bad.json", '{"lr": {"_type": "uniform", "_value": [1, 0]}}', "below high"),
])
def test_from_file_errors_name_the_file(tmp_path, name: str, content: str | None, text: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_file(path)
    assert info.value.source == str(path)
    assert text in str(info.value)
