"""The events a worker sends the scheduler about one attempt: one frozen dataclass per kind, built, encoded
to JSON and decoded here only (through wire.Codec).

On the wire an event is one JSON object, ``{"type": KIND, "v": VERSION, "trial", "attempt", "ts", ...its
fields}``, in the `e` field of an entry of the experiment's events stream (keys.events). Every event checks
its fields' types when it is built, so a producer (the worker, the simulation) cannot send what the
scheduler would refuse; `decode` returns `Unreadable` for anything else (not JSON, an unknown kind, a
missing or ill-typed field, a newer version), which the scheduler logs and acknowledges. An event without
"v" is version 1 (sent before versions were written); fields this version does not know are ignored.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hpoqueue.broker.wire import Codec, Unreadable, WireError
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


EventError = WireError  #: an event that cannot be built or read


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event carries: the trial, its attempt and when it happened (the worker's clock)."""

    TYPE: ClassVar[str]  #: the kind's name on the wire
    #: whether it ends the scheduler's wait: a start or a wait for GPUs does not, and is recorded at the
    #: scheduler's next wake (the attempt's next event, another's, or the sweep within a second), before the
    #: events of its attempt that follow (see Channel.emit_many)
    WAKES: ClassVar[bool] = True
    trial: str
    attempt: int
    ts: float
    version: int = VERSION

    def __post_init__(self) -> None:
        _CODEC.check(self)


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """The trial's command runs: where, as which process group leader, on which GPUs, logging where."""

    TYPE: ClassVar[str] = "started"
    WAKES: ClassVar[bool] = False
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
    WAKES: ClassVar[bool] = False
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
_CODEC = Codec(KINDS, what="event", tag="type", version=VERSION, renames={"version": "v"})


def encode(event: Event) -> str:
    """The event as the JSON text a stream entry carries."""
    return _CODEC.encode(event)


def decode(raw: bytes | str) -> Event | Unreadable:
    """The event `raw` encodes, or Unreadable saying why not (never an exception)."""
    return _CODEC.decode(raw)
