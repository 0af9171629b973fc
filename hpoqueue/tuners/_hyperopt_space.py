"""NNI search spaces in hyperopt's terms: the ``hp`` expression, and trial values converted both ways.

Labels are parameter paths (``optimizer/sgd/momentum`` for a nested one). hyperopt stores a choice
as its option index; everything else as the value itself, except NNI's randint (``ordered=False``),
which becomes hyperopt's ``hp.randint``: unordered categories stored as ``value - lower``. With
``ordered=True`` an integer is ``hp.quniform(lower - 0.5, upper - 0.5, 1)``: the same uniform prior, but
on a line, so hyperopt's models learn from neighbouring values.
"""

from __future__ import annotations

import math
from typing import Any

from hyperopt import hp

from hpoqueue.space import SearchSpace

Vals = dict[str, Any]


def _is_nested(option: Any) -> bool:
    return isinstance(option, dict) and "_name" in option


def _label(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def hyperopt_expr(raw: dict, prefix: str = "", *, ordered: bool = True) -> dict[str, Any]:
    """The hyperopt expression for a (validated) NNI space."""
    out: dict[str, Any] = {}
    for name, spec in raw.items():
        if name == "_name":
            continue
        label = _label(prefix, name)
        kind, value = spec["_type"], spec["_value"]
        if kind == "choice":
            out[name] = hp.choice(label, [
                hyperopt_expr(opt, _label(label, str(opt["_name"])), ordered=ordered) if _is_nested(opt) else i
                for i, opt in enumerate(value)])
        elif kind == "randint" and ordered:
            out[name] = hp.quniform(label, int(value[0]) - 0.5, int(value[1]) - 0.5, 1)
        elif kind == "randint":
            out[name] = hp.randint(label, int(value[1]) - int(value[0]))
        elif kind in ("loguniform", "qloguniform"):
            out[name] = getattr(hp, kind)(label, math.log(value[0]), math.log(value[1]), *value[2:])
        else:
            out[name] = getattr(hp, kind)(label, *value)
    return out


def params_from_vals(space: SearchSpace, vals: Vals, *, ordered: bool = True) -> dict[str, Any]:
    """NNI-form parameters from hyperopt's ``misc["vals"]`` (label -> [value] or [] when inactive),
    snapped onto the space (q-types clipped to [low, high], randint as int)."""
    params = _walk_vals(space.raw, {k: v[0] for k, v in vals.items() if len(v)}, "", ordered)
    return space.decode(space.encode(params))


def _walk_vals(raw: dict, vals: Vals, prefix: str, ordered: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in raw.items():
        if name == "_name":
            out[name] = spec
            continue
        label = _label(prefix, name)
        kind, value, v = spec["_type"], spec["_value"], vals[label]
        if kind == "choice":
            option = value[int(v)]
            out[name] = (_walk_vals(option, vals, _label(label, str(option["_name"])), ordered)
                         if _is_nested(option) else option)
        elif kind == "randint":
            out[name] = int(round(float(v))) + (0 if ordered else int(value[0]))
        else:
            out[name] = float(v)
    return out


def vals_from_params(space: SearchSpace, params: dict[str, Any], *, ordered: bool = True) -> Vals:
    """hyperopt's value of every active label for NNI-form `params` (inverse of params_from_vals)."""
    out: Vals = {}
    _walk_params(space, space.raw, params, "", out, ordered)
    return out


def _walk_params(space: SearchSpace, raw: dict, params: dict[str, Any], prefix: str, out: Vals,
                 ordered: bool) -> None:
    for name, spec in raw.items():
        if name == "_name":
            continue
        label = _label(prefix, name)
        kind, value, v = spec["_type"], spec["_value"], params[name]
        if kind == "choice":
            index = _option_index(space, value, v)
            out[label] = index
            if _is_nested(value[index]):
                _walk_params(space, value[index], v, _label(label, str(value[index]["_name"])), out, ordered)
        elif kind == "randint":
            out[label] = float(v) if ordered else int(v) - int(value[0])
        else:
            out[label] = float(v)


def _option_index(space: SearchSpace, options: list, value: Any) -> int:
    """Index of the option `value` is (for a nested option: the one with its ``_name``)."""
    if isinstance(value, dict) and "_name" in value:
        return next(i for i, o in enumerate(options) if _is_nested(o) and o["_name"] == value["_name"])
    key = space.key(value)
    return next(i for i, o in enumerate(options) if not _is_nested(o) and space.key(o) == key)
