"""Where hpoqueue keeps things: its home, the default database, and the broker each experiment runs on.

Kept apart from experiment.py (which loads the scheduler, storage and tuners) so that the CLI's reading
commands start quickly.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "HPOQUEUE_HOME"
ENV_STORAGE = "HPOQUEUE_STORAGE_URL"


def home_dir() -> Path:
    """Where hpoqueue keeps its database and experiments: $HPOQUEUE_HOME or ~/hpoqueue-experiments."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / "hpoqueue-experiments").expanduser()


def storage_url(cli_value: str | None = None, config_value: str | None = None) -> str:
    """`--storage`, else the config's `storage`, else $HPOQUEUE_STORAGE_URL, else SQLite in home_dir()."""
    return cli_value or config_value or os.environ.get(ENV_STORAGE) or \
        f"sqlite:///{home_dir() / 'hpoqueue.db'}"


def attempt_dir(work_dir: str | Path, seq: int, attempt: int) -> Path:
    """An attempt's files (trial.stdout, trial.stderr, trial.log) in its experiment's directory."""
    return Path(work_dir) / "trials" / str(seq) / f"attempt-{attempt}"


def remember_broker(work_dir: Path, url: str) -> None:
    """Record the broker an experiment runs on, for `resume` and the CLI's kill/stop/update."""
    _write_private(work_dir / "broker.url", url)


def stored_broker(work_dir: Path) -> str | None:
    """The broker recorded for the experiment in `work_dir`, if any."""
    try:
        return (work_dir / "broker.url").read_text().strip() or None
    except OSError:
        return None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold a broker password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
