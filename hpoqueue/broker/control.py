"""The commands the CLI (and the dashboard) send an experiment's scheduler: one frozen dataclass per kind,
built, encoded to JSON and decoded here only (through wire.Codec).

On the wire a command is one JSON object, ``{"cmd": KIND, "v": VERSION, ...its fields}``, an item of the
experiment's control list (keys.control). Fields are checked when a command is built, so `hpoqueue kill`
cannot send what the scheduler would refuse; `decode` returns `Unreadable` for anything else (not JSON, an
unknown kind, a missing or ill-typed field, a newer version), which the scheduler logs and drops. A command
without "v" is version 1 (sent before versions were written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hpoqueue.broker.wire import Codec, Unreadable, WireError

VERSION = 1  #: raise it when a command changes in a way an older scheduler would misread

ControlError = WireError  #: a command that cannot be built or read


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every command carries: the version of its wire format."""

    TYPE: ClassVar[str]  #: the kind's name on the wire
    version: int = VERSION

    def __post_init__(self) -> None:
        _CODEC.check(self)


@dataclass(frozen=True, kw_only=True)
class Stop(Command):
    """Stop the experiment: no new trials, those in flight canceled (`hpoqueue stop`)."""

    TYPE: ClassVar[str] = "stop"


@dataclass(frozen=True, kw_only=True)
class Kill(Command):
    """Cancel one trial in flight (`hpoqueue kill`)."""

    TYPE: ClassVar[str] = "kill"
    trial: str


@dataclass(frozen=True, kw_only=True)
class Update(Command):
    """New budgets, already stored by `hpoqueue update`; None leaves one as it is."""

    TYPE: ClassVar[str] = "update"
    concurrency: int | None = None
    max_trial_number: int | None = None
    max_duration: float | None = None


@dataclass(frozen=True, kw_only=True)
class SearchSpace(Command):
    """A new search space (NNI's JSON form), checked and stored by `hpoqueue update --search-space`."""

    TYPE: ClassVar[str] = "search_space"
    space: dict[str, Any]


#: every command kind by its wire name
KINDS: dict[str, type[Command]] = {cls.TYPE: cls for cls in (Stop, Kill, Update, SearchSpace)}
_CODEC = Codec(KINDS, what="command", tag="cmd", version=VERSION, renames={"version": "v"})


def encode(command: Command) -> str:
    """The command as the JSON text a control list item carries."""
    return _CODEC.encode(command)


def decode(raw: bytes | str) -> Command | Unreadable:
    """The command `raw` encodes, or Unreadable saying why not (never an exception)."""
    return _CODEC.decode(raw)
