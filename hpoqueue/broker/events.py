"""The events a worker sends the scheduler about one attempt: one frozen dataclass per kind, built, encoded
to JSON and decoded here only.

On the wire an event is one JSON object, ``{"type": KIND, "v": VERSION, "trial", "attempt", "ts", ...its
fields}``, in the `e` field of an entry of the experiment's events stream (keys.events). Every event checks
its fields' types when it is built, so a producer (the worker, the simulation) cannot send what the
scheduler would refuse; `decode` returns `Unreadable` for anything else (not JSON, an unknown kind, a
missing or ill-typed field, a newer version), which the scheduler logs and acknowledges. An event without
"v" is version 1 (sent before versions were written); fields this version does not know are ignored.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal, Union

from hpoqueue.metrics import MetricKind

VERSION = 1  #: raise it when an event changes in a way an older scheduler would misread

Stream = Literal["stdout", "stderr", "log"]
#: how an attempt ended: the runner's outcomes, and "error" when the worker itself failed around the trial
EndReason = Literal["exited", "stopped", "timeout", "spawn_failed", "error"]
#: why the scheduler asked a worker to stop an attempt (the text pushed on the attempt's stop list)
StopReason = Literal["early_stopped", "user_canceled", "timeout", "lost"]
STOP_REASONS: tuple[StopReason, ...] = typing.get_args(StopReason)


def stop_reason(raw: bytes | str | None) -> StopReason | None:
    """The stop reason an attempt's stop list held (None: no stop asked); a text this hpoqueue does not know
    (pushed by hand, or by a newer version) stops the attempt as a user's cancel would."""
    if raw is None or raw in (b"", ""):
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for reason in STOP_REASONS:
        if text == reason:
            return reason
    return "user_canceled"


class EventError(ValueError):
    """An event that cannot be built or read: the message names the field and what was wrong."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event carries: the trial, its attempt and when it happened (the worker's clock)."""

    TYPE: ClassVar[str]  #: the kind's name on the wire
    trial: str
    attempt: int
    ts: float
    version: int = VERSION

    def __post_init__(self) -> None:
        for name, check, wanted in _CHECKS[type(self)]:
            given = getattr(self, name)
            value = check(given)
            if value is _BAD:
                raise EventError(f"field {name!r} is {given!r}, not {wanted}")
            if value is not given:
                object.__setattr__(self, name, value)  # a list made a tuple, an int made a float


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """The trial's command runs: where, as which process group leader, on which GPUs, logging where."""

    TYPE: ClassVar[str] = "started"
    host: str  #: the Celery node name
    pid: int
    gpus: tuple[int, ...] | None  #: None: CUDA_VISIBLE_DEVICES left alone; (): every GPU hidden
    queue: str
    log_dir: str | None  #: the attempt's directory on the worker's machine
    machine: str | None  #: the worker's hostname, where the whole logs stay


@dataclass(frozen=True, kw_only=True)
class Waiting(Event):
    """The attempt is claimed but waits for GPU slots; `why` says what it waits for."""

    TYPE: ClassVar[str] = "waiting"
    why: str


@dataclass(frozen=True, kw_only=True)
class Log(Event):
    """A chunk of one of the trial's log files, `data` written at byte offset `at` (see log_relay)."""

    TYPE: ClassVar[str] = "log"
    stream: Stream
    at: int
    data: str  #: the bytes decoded with surrogateescape: any bytes travel as text


@dataclass(frozen=True, kw_only=True)
class Metric(Event):
    """One reported result: `value` the scalar the tuner sees, `data` the result as reported (a number or a
    dict of them), `step` its rank among the attempt's results of that kind."""

    TYPE: ClassVar[str] = "metric"
    kind: MetricKind
    step: int
    value: float
    data: Any


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    """The attempt is over; the last event an attempt sends."""

    TYPE: ClassVar[str] = "finished"
    reason: EndReason
    exit_code: int | None  #: None when a signal ended the trial, or it never ran
    signal: str | None  #: the signal's name ("SIGTERM") when one ended the trial's leader
    stop_reason: StopReason | None  #: set when reason is "stopped" (or a stop came before the start)
    message: str
    metrics_rejected: int = 0  #: reports the worker refused (not a finite number, or a bad dict)


#: every event kind by its wire name
KINDS: dict[str, type[Event]] = {cls.TYPE: cls for cls in (Started, Waiting, Log, Metric, Finished)}
_WIRE = {"version": "v"}  #: wire names of fields whose attribute is named otherwise


@dataclass(frozen=True)
class Unreadable:
    """What came in place of an event that cannot be read; the scheduler logs it and acknowledges it."""

    raw: str
    why: str


def encode(event: Event) -> str:
    """The event as the JSON text a stream entry carries."""
    body = {"type": event.TYPE}
    body.update((wire, getattr(event, name)) for name, wire in _NAMES[type(event)])
    return json.dumps(body)


def decode(raw: bytes | str) -> Event | Unreadable:
    """The event `raw` encodes, or Unreadable saying why not (never an exception)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        return _decode(text)
    except EventError as exc:
        return Unreadable(text, str(exc))


def _decode(text: str) -> Event:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise EventError(f"not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise EventError(f"not a JSON object but {type(body).__name__}")
    cls = KINDS.get(body.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise EventError(f"unknown type {body.get('type')!r} (known: {', '.join(KINDS)})")
    version = body.get("v", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise EventError(f"version {version} is newer than this hpoqueue's {VERSION} (upgrade hpoqueue where "
                         "the scheduler runs)")
    values = {name: body[wire] for name, wire in _NAMES[cls] if wire in body}
    if len(values) < len(_NAMES[cls]):
        missing = [name for name, _wire in _NAMES[cls] if name not in values and name not in _DEFAULTED[cls]]
        if missing:
            raise EventError(f"{cls.TYPE} event lacks {', '.join(missing)}")
    return cls(**values)


# ---- field checks, made once per class from its annotations ---------------------------------------------
_BAD: Any = object()  #: what a check returns for a value of the wrong type
Check = typing.Callable[[Any], Any]


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
    return {type(None): "null", float: "a number", Any: "anything"}.get(hint) or hint.__name__


_CHECKS: dict[type[Event], list[tuple[str, Check, str]]] = {}
_NAMES: dict[type[Event], list[tuple[str, str]]] = {}  #: each field's name and its name on the wire
_DEFAULTED: dict[type[Event], set[str]] = {}
for _cls in KINDS.values():
    _hints = typing.get_type_hints(_cls)
    _CHECKS[_cls] = [(f.name, _checker(_hints[f.name]), _describe(_hints[f.name])) for f in fields(_cls)]
    _NAMES[_cls] = [(f.name, _WIRE.get(f.name, f.name)) for f in fields(_cls)]
    _DEFAULTED[_cls] = {f.name for f in fields(_cls) if f.default is not MISSING}
