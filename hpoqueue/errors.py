"""One exception root for hpoqueue; every user-facing error says what is wrong, where, and how to fix it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol


class HpoQueueError(Exception):
    """Root of every error hpoqueue raises on purpose. The CLI prints it on one line and exits 2."""

    exit_code = 2


class ConfigError(HpoQueueError):
    """A config file, search space or option is wrong.

    The message reads ``<source>: <field>: <problem> (<hint>)`` so the user sees the file, the field path
    and the fix on one line.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        self.source = source
        self.field = field
        self.problem = message
        self.hint = hint
        parts = [p for p in (source, field) if p]
        text = ": ".join([*parts, message])
        if hint:
            text += f" ({hint})"
        super().__init__(text)


def read_text(path: Path, error: type[ConfigError], what: str, hint: str) -> str:
    """The UTF-8 text of a file the user named, or `error` saying which file, why, and `hint`."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"cannot read the {what}: {reason}", source=str(path), hint=hint) from None


class SearchSpaceError(ConfigError):
    """The search space is malformed (unknown _type, bad bounds, empty choice, ...)."""


class MetricError(HpoQueueError):
    """A trial reported a metric that is not a finite number (NaN, inf, text)."""


class BrokerError(HpoQueueError):
    """The broker cannot be reached or started."""


class StorageError(HpoQueueError):
    """The database cannot be opened or written (bad URL, wrong password, unreachable server)."""


class StorageUnavailableError(StorageError):
    """The database connection was lost (server restarted, connection terminated): worth waiting for."""


class AlreadyRunningError(HpoQueueError):
    """A second scheduler for an experiment whose scheduler is alive (`resume` beside a running one)."""


class NotFoundError(HpoQueueError):
    """An experiment or trial id that storage does not know."""


class GpuError(HpoQueueError):
    """A GPU request the box cannot satisfy (unknown index, more GPUs than exist)."""


class _URL(Protocol):
    """A parsed URL (SQLAlchemy's), rendered with its password for redact() to mask."""

    def render_as_string(self, hide_password: bool = ...) -> str: ...


def redact(url: str | _URL) -> str:
    """`url` (a broker's or a database's, any scheme, parsed or not, parsable or not) with the password of its
    user part replaced by ***, for messages and logs."""
    text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    return re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", text, count=1)
