"""NNI search spaces (``{"name": {"_type": T, "_value": [...]}}``): validation, sampling, grids, and the
[0, 1]^d encoding that numeric tuners share. Semantics follow NNI exactly (randint's upper bound is
exclusive, q-types are ``clip(round(x / q) * q, low, high)``, nested choices carry ``_name``)."""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import logging
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from hpoqueue.config.yaml_loading import parse_json, parse_yaml, read_document
from hpoqueue.errors import SearchSpaceError

log = logging.getLogger(__name__)

__all__ = ["Dim", "SearchSpace", "TYPES"]

Kind = Literal["continuous", "integer", "categorical"]


@dataclass(frozen=True)
class _Law:
    """Shape of one numeric `_type`: its arity, log scale, quantisation, and [low, high] vs [mu, sigma]."""

    arity: int
    log: bool
    quantized: bool
    bounded: bool


_LAWS: dict[str, _Law] = {
    "uniform": _Law(2, False, False, True),
    "quniform": _Law(3, False, True, True),
    "loguniform": _Law(2, True, False, True),
    "qloguniform": _Law(3, True, True, True),
    "normal": _Law(2, False, False, False),
    "qnormal": _Law(3, False, True, False),
    "lognormal": _Law(2, True, False, False),
    "qlognormal": _Law(3, True, True, False),
}
#: The largest bound a numeric `_value` may have, and the most steps a q-type may take: beyond 2**53 a float
#: no longer counts integers exactly, and sampling and grids overflow.
MAX_MAGNITUDE = 2.0**53
_FORMS = {"randint": "[lower, upper]", **{k: ("[low, high" if law.bounded else "[mu, sigma")
                                            + (", q]" if law.quantized else "]") for k, law in _LAWS.items()}}
#: Every `_type` NNI defines.
TYPES: tuple[str, ...] = ("choice", "randint", *_LAWS)
#: Unbounded types decode through the normal quantile of u clipped to [EPS, 1 - EPS] (about +-7 sigma).
_EPS = 1e-12
_STANDARD_NORMAL = NormalDist()  #: the normal types' CDF (statistics: no scipy import for the scheduler)


@dataclass(frozen=True)
class Dim:
    """One parameter's slice ``start:stop`` of the encoded vector (k one-hot columns for a choice).

    ``low``/``high`` are value bounds (randint: ``high`` exclusive), None for the normal types, which
    have ``mu``/``sigma`` instead. ``choices`` holds a choice's options (the ``_name`` of nested ones).
    A dim under a nested choice names the choice (``parent``) and option index that make it active.
    """

    path: str
    kind: Kind
    log: bool
    type: str
    start: int
    stop: int
    low: float | None = None
    high: float | None = None
    q: float | None = None
    mu: float | None = None
    sigma: float | None = None
    choices: tuple[Any, ...] = field(default=(), compare=False)
    parent: str | None = None
    parent_option: int | None = None

    @property
    def n_choices(self) -> int:
        """Number of options of a categorical dim (0 otherwise)."""
        return len(self.choices)

    @property
    def width(self) -> int:
        """Number of columns this dim occupies."""
        return self.stop - self.start


def _tidy(v: float) -> float:
    """Drop float noise from quantised values (0.30000000000000004 -> 0.3)."""
    return float(f"{v:.12g}")


def _canon(v: Any) -> Any:
    """JSON-ready copy of `v` with numpy types unwrapped and floats normalised (integral floats as ints)."""
    if isinstance(v, dict):
        return {str(k): _canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_canon(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isfinite(f) and f.is_integer() and abs(f) < 2**53:
            return int(f)
        return _tidy(f) if math.isfinite(f) else f
    return v


def _key(v: Any) -> str:
    return json.dumps(_canon(v), sort_keys=True, separators=(",", ":"))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _is_number(v: Any) -> bool:
    if not isinstance(v, numbers.Real) or isinstance(v, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an integer beyond a float's range
        return False


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 24 else text[:21] + "..."


def _is_spec(v: Any) -> bool:
    return isinstance(v, dict) and ("_type" in v or "_value" in v)


class _Node:
    """One parameter of a (sub-)space. Subclasses know how to sample, check, enumerate and encode it."""

    name: str
    dim: Dim

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def values(self, points: int) -> list[Any]:
        """Grid values; continuous parameters get `points` of them."""
        raise NotImplementedError

    @property
    def size(self) -> int | None:
        raise NotImplementedError

    def check(self, value: Any, where: str) -> None:
        raise NotImplementedError

    def encode(self, value: Any, out: np.ndarray) -> None:
        raise NotImplementedError

    def decode(self, x: np.ndarray) -> Any:
        raise NotImplementedError

    def deactivate(self, out: np.ndarray) -> None:
        """Fill this parameter's columns (and those of any nested ones) with 0.5: inactive."""
        out[self.dim.start:self.dim.stop] = 0.5

    def all_dims(self) -> list[Dim]:
        return [self.dim]


def _bad(value: Any, where: str, problem: str, hint: str | None = None) -> SearchSpaceError:
    return SearchSpaceError(f"{value!r} {problem}", field=where, hint=hint)


class _Numeric(_Node):
    """uniform, quniform, loguniform, qloguniform, normal, qnormal, lognormal, qlognormal."""

    def __init__(self, name: str, dim: Dim, law: _Law, a: float, b: float, q: float | None) -> None:
        self.name, self.dim, self.law, self.q = name, dim, law, q
        self.a, self.b = a, b  # low/high, or mu/sigma
        self.ta, self.tb = (math.log(a), math.log(b)) if law.log and law.bounded else (a, b)

    def _snap(self, v: float) -> float:
        if self.q is not None:
            v = round(v / self.q) * self.q
        if self.law.bounded:
            v = min(max(v, self.a), self.b)
        return _tidy(v) if self.q is not None else float(v)

    def _from_t(self, t: float) -> float:
        return self._snap(math.exp(t) if self.law.log else t)

    def sample(self, rng: np.random.Generator) -> float:
        t = rng.uniform(self.ta, self.tb) if self.law.bounded else rng.normal(self.a, self.b)
        return self._from_t(float(t))

    def _k_range(self) -> range | None:
        """Multipliers k whose value clip(k*q) has non-zero probability; None unless a bounded q-type."""
        if self.q is None or not self.law.bounded:
            return None
        return range(math.floor(self.a / self.q + 0.5), math.ceil(self.b / self.q - 0.5) + 1)

    @property
    def size(self) -> int | None:
        ks = self._k_range()
        return None if ks is None else len(ks)

    def values(self, points: int) -> list[float]:
        ks = self._k_range()
        if ks is not None:
            return [self._snap(k * self.q) for k in ks]  # type: ignore[operator]
        if self.law.bounded:
            units = [0.5] if points == 1 else list(np.linspace(0.0, 1.0, points))
        else:
            units = list((np.arange(points) + 0.5) / points)
        return list({_key(v): v for v in (self.from_unit(float(u)) for u in units)}.values())

    def check(self, value: Any, where: str) -> None:
        if not _is_number(value):
            raise _bad(value, where, f"is not a finite number ({self.dim.type} parameter)")
        v = float(value)
        if self.law.bounded and not (self.a <= v <= self.b or _close(v, self.a) or _close(v, self.b)):
            raise _bad(value, where, f"is outside [{self.a}, {self.b}]")
        if self.law.log and not self.law.bounded and (v < 0 or (v == 0 and self.q is None)):
            raise _bad(value, where, f"is not positive ({self.dim.type} values are)")
        if self.q is not None and not (_close(v / self.q, round(v / self.q)) or _close(v, self.a)
                                       or (self.law.bounded and _close(v, self.b))):
            raise _bad(value, where, f"is not a multiple of q={self.q}")

    def to_unit(self, v: float) -> float:
        if self.law.log:
            if v <= 0:
                return 0.0
            v = math.log(v)
        if self.law.bounded:
            return min(max((v - self.ta) / (self.tb - self.ta), 0.0), 1.0)
        return _STANDARD_NORMAL.cdf((v - self.a) / self.b)

    def from_unit(self, u: float) -> float:
        if self.law.bounded:
            return self._from_t(self.ta + min(max(u, 0.0), 1.0) * (self.tb - self.ta))
        return self._from_t(self.a + self.b * _STANDARD_NORMAL.inv_cdf(min(max(u, _EPS), 1.0 - _EPS)))

    def encode(self, value: Any, out: np.ndarray) -> None:
        out[self.dim.start] = self.to_unit(float(value))

    def decode(self, x: np.ndarray) -> float:
        return self.from_unit(float(x[self.dim.start]))


class _RandInt(_Node):
    """randint [lower, upper): an integer, upper bound exclusive (NNI)."""

    def __init__(self, name: str, dim: Dim, low: int, high: int) -> None:
        self.name, self.dim, self.low, self.high = name, dim, low, high

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high))

    @property
    def size(self) -> int:
        return self.high - self.low

    def values(self, points: int) -> list[int]:
        return list(range(self.low, self.high))

    def check(self, value: Any, where: str) -> None:
        if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
            raise _bad(value, where, "is not an integer (randint parameter)")
        if not self.low <= int(value) < self.high:
            raise _bad(value, where, f"is outside [{self.low}, {self.high})",
                       "randint excludes the upper bound")

    def encode(self, value: Any, out: np.ndarray) -> None:
        out[self.dim.start] = (int(value) - self.low + 0.5) / self.size

    def decode(self, x: np.ndarray) -> int:
        u = min(max(float(x[self.dim.start]), 0.0), 1.0)
        return self.low + min(int(u * self.size), self.size - 1)


@dataclass
class _Option:
    """One option of a choice: a constant value, or a nested sub-space named by `_name`."""

    value: Any
    name: str | int | float | None = None  #: a nested option's `_name` (NNI allows numbers)
    params: list[_Node] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        if self.params is None:
            return copy.deepcopy(self.value)
        return {"_name": self.name, **_sample(self.params, rng)}


class _Choice(_Node):
    """choice: one of the options; dict options with `_name` are nested sub-spaces."""

    def __init__(self, name: str, dim: Dim, options: list[_Option]) -> None:
        self.name, self.dim, self.options = name, dim, options
        self._by_key: dict[str, int] = {}
        for i, o in enumerate(options):
            self._by_key.setdefault(("n:" + str(o.name)) if o.params is not None else _key(o.value), i)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))].sample(rng)

    @property
    def size(self) -> int | None:
        total = len({_key(o.value) for o in self.options if o.params is None})
        for o in self.options:
            if o.params is not None:
                sub = _size(o.params)
                if sub is None:
                    return None
                total += sub
        return total

    def values(self, points: int) -> list[Any]:
        out: dict[str, Any] = {}
        for o in self.options:
            if o.params is None:
                out.setdefault(_key(o.value), o.value)
            else:
                for combo in _grid(o.params, points):
                    out.setdefault(f"{o.name}:{_key(combo)}", {"_name": o.name, **combo})
        return [copy.deepcopy(v) for v in out.values()]

    def index(self, value: Any, where: str) -> int:
        if isinstance(value, dict) and "_name" in value and ("n:" + str(value["_name"])) in self._by_key:
            return self._by_key["n:" + str(value["_name"])]
        try:
            return self._by_key[_key(value)]
        except (KeyError, TypeError):
            names = [o.name if o.params is not None else o.value for o in self.options]
            raise _bad(value, where, "is not one of the choice's options", f"options: {names}") from None

    def check(self, value: Any, where: str) -> None:
        o = self.options[self.index(value, where)]
        if o.params is not None:
            _check(o.params, {k: v for k, v in value.items() if k != "_name"}, where)

    def encode(self, value: Any, out: np.ndarray) -> None:
        i = self.index(value, self.dim.path)
        out[self.dim.start:self.dim.stop] = 0.0
        out[self.dim.start + i] = 1.0
        for j, o in enumerate(self.options):
            if o.params is not None and j == i:
                _encode(o.params, value, out)
            else:
                for p in o.params or ():
                    p.deactivate(out)

    def decode(self, x: np.ndarray) -> Any:
        o = self.options[int(np.argmax(x[self.dim.start:self.dim.stop]))]
        if o.params is None:
            return copy.deepcopy(o.value)
        return {"_name": o.name, **{p.name: p.decode(x) for p in o.params}}

    def deactivate(self, out: np.ndarray) -> None:
        super().deactivate(out)
        for o in self.options:
            for p in o.params or ():
                p.deactivate(out)

    def all_dims(self) -> list[Dim]:
        return [self.dim, *(d for o in self.options for p in o.params or () for d in p.all_dims())]


def _encode(params: list[_Node], values: dict, out: np.ndarray) -> None:
    for p in params:
        if p.name not in values:
            raise SearchSpaceError("parameter is missing", field=p.dim.path,
                                   hint="give a value for every parameter")
        p.encode(values[p.name], out)


def _sample(params: list[_Node], rng: np.random.Generator) -> dict[str, Any]:
    return {p.name: p.sample(rng) for p in params}


def _size(params: list[_Node]) -> int | None:
    total = 1
    for p in params:
        s = p.size
        if s is None:
            return None
        total *= s
    return total


def _grid(params: list[_Node], points: int) -> list[dict[str, Any]]:
    names = [p.name for p in params]
    columns = [p.values(points) for p in params]
    return [dict(zip(names, copy.deepcopy(combo), strict=True)) for combo in itertools.product(*columns)]


def _check(params: list[_Node], values: Any, where: str) -> None:
    if not isinstance(values, dict):
        raise _bad(values, where, "is not a mapping of parameter names to values")
    names = [p.name for p in params]
    for k in values:
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            raise SearchSpaceError(f"unknown parameter '{k}'", field=f"{where}.{k}" if where else str(k),
                                   hint=f"did you mean '{close[0]}'?" if close else f"parameters: {names}")
    for p in params:
        sub = f"{where}.{p.name}" if where else p.name
        if p.name not in values:
            raise SearchSpaceError("parameter is missing", field=sub, hint="give a value for every parameter")
        p.check(values[p.name], sub)


class _Builder:
    """Validates a raw space into nodes, laying their dims out column by column."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.col = 0

    def fail(self, problem: str, where: str, hint: str | None = None) -> SearchSpaceError:
        return SearchSpaceError(problem, source=self.source, field=where, hint=hint)

    def space(self, raw: Any, where: str, prefix: str, parent: tuple[str, int] | None) -> list[_Node]:
        if not isinstance(raw, dict):
            raise self.fail(f"must be a mapping of parameter names to {{_type, _value}} specs, not "
                            f"{type(raw).__name__}", where, 'for example {"lr": {"_type": "loguniform", '
                            '"_value": [0.0001, 0.1]}}; an empty space is {}')
        nodes = []
        for name, spec in raw.items():
            if name == "_name" and parent is not None:
                continue
            if not isinstance(name, str):
                raise self.fail(f"parameter names must be strings, not {name!r}", f"{where}.{name}")
            if name.startswith("_"):
                raise self.fail(f"parameter names may not start with '_' ('{name}')", f"{where}.{name}",
                                "'_name' belongs inside a nested choice option")
            path = f"{prefix}/{name}" if prefix else name
            nodes.append(self.param(name, spec, f"{where}.{name}", path, parent))
        return nodes

    def param(self, name: str, spec: Any, where: str, path: str, parent: tuple[str, int] | None) -> _Node:
        if not isinstance(spec, dict):
            raise self.fail(f"must be a {{_type, _value}} spec, not {spec!r}", where,
                            'for example {"_type": "choice", "_value": [1, 2]}')
        for k in spec:
            if k not in ("_type", "_value"):
                close = difflib.get_close_matches(str(k), ["_type", "_value"], n=1)
                hint = f"did you mean '{close[0]}'?" if close else "a spec has only _type and _value"
                raise self.fail(f"unknown key '{k}'", f"{where}.{k}", hint)
        for k in ("_type", "_value"):
            if k not in spec:
                raise self.fail(f"missing '{k}'", where, 'a spec is {"_type": ..., "_value": [...]}')
        kind, value = spec["_type"], spec["_value"]
        if kind not in TYPES:
            close = difflib.get_close_matches(str(kind), TYPES, n=1)
            raise self.fail(f"unknown _type {kind!r}", f"{where}._type",
                            f"did you mean '{close[0]}'?" if close else f"choose one of {', '.join(TYPES)}")
        vwhere = f"{where}._value"
        if not isinstance(value, list):
            raise self.fail(f"must be a list, not {value!r}", vwhere)
        pkw: dict[str, Any] = {"parent": parent[0], "parent_option": parent[1]} if parent else {}
        if kind == "choice":
            return self.choice(name, value, vwhere, path, pkw)
        form = _FORMS[kind]
        if len(value) != form.count(",") + 1:
            raise self.fail(f"{kind} takes {form}, got {len(value)} values", vwhere)
        for i, v in enumerate(value):
            if not _is_number(v):
                raise self.fail(f"{_short(v)} is not a finite number", f"{vwhere}[{i}]")
            if abs(v) > MAX_MAGNITUDE:
                raise self.fail(f"{_short(v)} is beyond +-2**53", f"{vwhere}[{i}]",
                                "a search space's bounds are numbers a float holds exactly")
        ranged = float(value[0]).is_integer() if kind == "randint" else _LAWS[kind].bounded
        if ranged and value[0] == value[1]:
            return self.constant(name, spec, vwhere, path, pkw)
        start, self.col = self.col, self.col + 1
        if kind == "randint":
            return self.randint(name, value, vwhere, path, start, pkw)
        law = _LAWS[kind]
        a, b = float(value[0]), float(value[1])
        q = float(value[2]) if law.quantized else None
        if law.bounded and a >= b:
            raise self.fail(f"low {value[0]} must be below high {value[1]}", vwhere)
        if law.bounded and law.log and a <= 0:
            raise self.fail(f"{kind} needs low > 0, got {value[0]}", f"{vwhere}[0]",
                            "use uniform for ranges that include 0")
        if not law.bounded and b <= 0:
            raise self.fail(f"sigma must be > 0, got {value[1]}", f"{vwhere}[1]")
        if q is not None and q <= 0:
            raise self.fail(f"q must be > 0, got {value[2]}", f"{vwhere}[2]")
        if law.log and not law.bounded and abs(a) + 8 * b > 700:
            raise self.fail(f"mu {value[0]} and sigma {value[1]} give values beyond a float (exp(700))", vwhere,
                            "keep |mu| + 8 * sigma below 700")
        if q is not None and (max(abs(a), abs(b)) + abs(b - a)) / q > MAX_MAGNITUDE:
            raise self.fail(f"q {value[2]} is too small for this range: more than 2**53 steps", f"{vwhere}[2]",
                            "make q larger, or use the unquantized type")
        bounds: dict[str, Any] = {"low": a, "high": b} if law.bounded else {"mu": a, "sigma": b}
        dim = Dim(path, "continuous", law.log, kind, start, start + 1, q=q, **bounds, **pkw)
        return _Numeric(name, dim, law, a, b, q)

    def constant(self, name: str, spec: dict, where: str, path: str, pkw: dict) -> _Choice:
        """A range with low == high: NNI samples it as that one value with a warning, and so do we. The
        spec becomes a one-option choice in the space's raw form too, which every tuner reads."""
        constant = int(spec["_value"][0]) if spec["_type"] == "randint" else float(spec["_value"][0])
        where_text = f"{self.source}: {where}" if self.source else where
        log.warning("%s: low == high, so %s is always %s", where_text, name, constant)
        spec.update({"_type": "choice", "_value": [constant]})
        return self.choice(name, [constant], where, path, pkw)

    def randint(self, name: str, value: list, where: str, path: str, start: int, pkw: dict) -> _RandInt:
        for i, v in enumerate(value):
            if not float(v).is_integer():
                raise self.fail(f"randint bounds must be integers, got {v!r}", f"{where}[{i}]")
        low, high = int(value[0]), int(value[1])
        if low >= high:
            raise self.fail(f"lower {low} must be below upper {high}", where,
                            "randint [lower, upper) excludes upper; [0, 3] gives 0, 1 or 2")
        return _RandInt(name, Dim(path, "integer", False, "randint", start, start + 1, low=low, high=high,
                                  **pkw), low, high)

    def choice(self, name: str, value: list, where: str, path: str, pkw: dict) -> _Choice:
        if not value:
            raise self.fail("choice needs at least one option", where)
        start, self.col = self.col, self.col + len(value)
        seen: set[str] = set()
        options = []
        for i, opt in enumerate(value):
            owhere = f"{where}[{i}]"
            nested = isinstance(opt, dict) and ("_name" in opt or any(_is_spec(v) for v in opt.values()))
            if not nested:
                options.append(_Option(opt))
                continue
            if "_name" not in opt:
                raise self.fail("a nested option needs a '_name'", owhere,
                                'for example {"_name": "sgd", "momentum": {"_type": "uniform", '
                                '"_value": [0, 1]}}')
            label = opt["_name"]
            if not isinstance(label, (str, int, float)) or isinstance(label, bool):
                raise self.fail(f"_name must be a string, not {label!r}", f"{owhere}._name")
            if str(label) in seen:
                raise self.fail(f"duplicate _name '{label}'", f"{owhere}._name",
                                "give each option its own _name")
            seen.add(str(label))
            subs = self.space(opt, owhere, f"{path}/{label}", (path, i))
            options.append(_Option(None, label, subs))
        labels = tuple(o.name if o.params is not None else o.value for o in options)
        dim = Dim(path, "categorical", False, "choice", start, start + len(value), choices=labels, **pkw)
        return _Choice(name, dim, options)


class SearchSpace:
    """A validated NNI search space. ``raw`` is (a copy of) the JSON as given; the rest derives from it."""

    def __init__(self, raw: dict, params: list[_Node], n_columns: int, source: str | None) -> None:
        self.raw = raw
        self.source = source
        self._params = params
        self._dims = [d for p in params for d in p.all_dims()]
        self._n_columns = n_columns

    @classmethod
    def from_dict(cls, raw: Any, *, source: str | None = None) -> SearchSpace:
        """Validate `raw`; a SearchSpaceError names `source` and the field (``searchSpace.lr._value``)."""
        builder = _Builder(source)
        raw = copy.deepcopy(raw)  # the builder rewrites constant ranges in it
        params = builder.space(raw, "searchSpace", "", None)
        return cls(raw, params, builder.col, source)

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Load a JSON (or YAML, by extension) search space file."""
        path = Path(path).expanduser()
        text = read_document(path, SearchSpaceError, "search space file", "check searchSpaceFile")
        parse = parse_yaml if path.suffix.lower() in (".yaml", ".yml") else parse_json
        raw = parse(text, source=str(path), error=SearchSpaceError)
        return cls.from_dict(raw, source=str(path))

    def __repr__(self) -> str:
        return f"SearchSpace({self.raw!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and _key(self.raw) == _key(other.raw)

    __hash__ = None  # type: ignore[assignment]

    def names(self) -> list[str]:
        """Top-level parameter names, in the order the space declares them."""
        return [p.name for p in self._params]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration drawn with NNI's semantics, in NNI's value form."""
        return _sample(self._params, rng)

    @property
    def size(self) -> int | None:
        """Number of distinct configurations, or None when a parameter is continuous or unbounded."""
        return _size(self._params)

    def grid(self, points: int = 0) -> list[dict[str, Any]]:
        """Every configuration of a finite space; with ``points > 0`` each continuous parameter gets
        `points` evenly spaced values (quantiles for the normal types). Raise `points` to subdivide."""
        if points < 0 or (points == 0 and self.size is None):
            raise SearchSpaceError("the space has continuous parameters, so a grid needs points > 0",
                                   source=self.source, field="searchSpace",
                                   hint="call grid(points=N) with N values per continuous parameter")
        return _grid(self._params, points)

    def key(self, params: dict) -> str:
        """Canonical JSON of `params` (sorted keys, integral floats as ints, 12 significant digits)."""
        return _key(params)

    def validate_params(self, params: dict) -> None:
        """Raise SearchSpaceError unless `params` is a configuration this space can produce."""
        _check(self._params, params, "")

    @property
    def dims(self) -> list[Dim]:
        """The flat numeric encoding, depth first (a nested choice's dims follow the choice's own)."""
        return list(self._dims)

    @property
    def dim(self) -> int:
        """Length of encoded vectors."""
        return self._n_columns

    def encode(self, params: dict) -> np.ndarray:
        """`params` as a vector in [0, 1]^dim; inactive nested parameters are 0.5."""
        out = np.full(self._n_columns, 0.5)
        _encode(self._params, params, out)
        return out

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        """The configuration nearest to vector `x`: clipped, q/int types rounded, argmax for choices."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self._n_columns,):
            raise SearchSpaceError(f"vector has shape {x.shape}, the space encodes to ({self._n_columns},)",
                                   source=self.source)
        return {p.name: p.decode(x) for p in self._params}
