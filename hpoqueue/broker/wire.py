"""How a message between hpoqueue's processes crosses the broker: a frozen dataclass per kind, whose fields
are checked against their annotations when it is built, and a `Codec` that writes it as one JSON object
(its kind under a tag, its version under "v") and reads it back, returning `Unreadable` for anything else.

events.py (worker -> scheduler) and control.py (CLI -> scheduler) are its two users.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, Generic, Literal, TypeVar, Union

M = TypeVar("M")


class WireError(ValueError):
    """A message that cannot be built or read: the text names the field and what was wrong."""


@dataclass(frozen=True)
class Unreadable:
    """What came in place of a message that cannot be read; the scheduler logs it and drops it."""

    raw: str
    why: str


class Codec(Generic[M]):
    """Checks, encodes and decodes the message classes of `kinds` (wire name -> class). `tag` is the field
    naming the kind; `renames` maps attributes to wire names (version -> v); a body without "v" is
    version 1 and fields a version does not know are ignored."""

    def __init__(self, kinds: Mapping[str, type[M]], *, what: str, tag: str, version: int,
                 renames: Mapping[str, str]) -> None:
        self.kinds = dict(kinds)
        self.what, self.tag, self.version = what, tag, version
        self._tags = {cls: name for name, cls in kinds.items()}
        self._checks: dict[type, list[tuple[str, Check, str]]] = {}
        self._names: dict[type, list[tuple[str, str]]] = {}
        self._defaulted: dict[type, set[str]] = {}
        for kind in kinds.values():
            cls: Any = kind  # a dataclass
            hints = typing.get_type_hints(cls)
            self._checks[cls] = [(f.name, _checker(hints[f.name]), _describe(hints[f.name])) for f in fields(cls)]
            self._names[cls] = [(f.name, renames.get(f.name, f.name)) for f in fields(cls)]
            self._defaulted[cls] = {f.name for f in fields(cls) if f.default is not MISSING}

    def check(self, message: M) -> None:
        """Check each field of a message being built (its __post_init__); a list becomes a tuple, an int a
        float where the annotation says so. WireError names the field that is wrong."""
        for name, check, wanted in self._checks[type(message)]:
            given = getattr(message, name)
            value = check(given)
            if value is _BAD:
                raise WireError(f"field {name!r} is {given!r}, not {wanted}")
            if value is not given:
                object.__setattr__(message, name, value)  # frozen: set while it is being built

    def encode(self, message: M) -> str:
        """The message as the JSON text that travels."""
        body = {self.tag: self._tags[type(message)]}
        body.update((wire, getattr(message, name)) for name, wire in self._names[type(message)])
        return json.dumps(body)

    def decode(self, raw: bytes | str) -> M | Unreadable:
        """The message `raw` encodes, or Unreadable saying why not (never an exception)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            return self._decode(text)
        except WireError as exc:
            return Unreadable(text, str(exc))

    def _decode(self, text: str) -> M:
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise WireError(f"not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise WireError(f"not a JSON object but {type(body).__name__}")
        kind = body.get(self.tag)
        cls = self.kinds.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise WireError(f"unknown {self.tag} {kind!r} (known: {', '.join(self.kinds)})")
        version = body.get("v", 1)
        if isinstance(version, int) and not isinstance(version, bool) and version > self.version:
            raise WireError(f"version {version} is newer than this hpoqueue's {self.version} (upgrade hpoqueue "
                            "where the scheduler runs)")
        values = {name: body[wire] for name, wire in self._names[cls] if wire in body}
        missing = [name for name, _wire in self._names[cls] if name not in values and name not in self._defaulted[cls]]
        if missing:
            raise WireError(f"{kind} {self.what} lacks {', '.join(missing)}")
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - every field was checked above
            raise WireError(str(exc)) from None


# ---- field checks, made once per class from its annotations ---------------------------------------------
_BAD: Any = object()  #: what a check returns for a value of the wrong type
Check = Callable[[Any], Any]


def _checker(hint: Any) -> Check:
    """A function that returns the value as `hint` wants it (a list as a tuple, an int as a float), or _BAD."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda value: value
    if origin in (Union, types.UnionType):
        checks = [_checker(arg) for arg in args]

        def either(value: Any) -> Any:
            for check in checks:
                result = check(value)
                if result is not _BAD:
                    return result
            return _BAD
        return either
    if origin is Literal:
        return lambda value: value if isinstance(value, str) and value in args else _BAD
    if origin is tuple:
        item = _checker(args[0])

        def items(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                return _BAD
            out = tuple(item(v) for v in value)
            return _BAD if any(v is _BAD for v in out) else out
        return items
    if origin is dict:
        return lambda value: value if isinstance(value, dict) else _BAD
    if hint is type(None):
        return lambda value: value if value is None else _BAD
    if hint is float:
        return lambda value: (_BAD if isinstance(value, bool) or not isinstance(value, (int, float))
                              else value if isinstance(value, float) else float(value))
    return lambda value: value if isinstance(value, hint) and not isinstance(value, bool) else _BAD


def _describe(hint: Any) -> str:
    """What a field of type `hint` must be, for the one line that says it is not."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return "a JSON object"
    return {type(None): "null", float: "a number", Any: "anything"}.get(hint) or hint.__name__

