"""hpoqueue's one logging tree: each module logs to ``logging.getLogger(__name__)``, under ``hpoqueue``.

The CLI (and the Python API, when its caller has not set up logging) configures the tree once with
configured(): one line per message on standard error, as the CLI writes its errors; ``--verbose`` adds the
debug lines, ``--quiet`` keeps warnings and errors only. In a worker the tree propagates to the root
handlers Celery sets up at its ``--loglevel``. Command output (tables, JSON, ids) is printed, never logged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = "hpoqueue"
QUIET, NORMAL, VERBOSE = -1, 0, 1  #: verbosity: --quiet, neither, --verbose
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is when a record comes (a test or the terminal hang-up may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must not raise into the code that logs
            self.handleError(record)


class _Lines(logging.Formatter):
    """Info as it is, then ``hpoqueue: warning: ...`` and ``hpoqueue: error: ...`` like the CLI's errors;
    debug lines name their module. A traceback only with --verbose: the user sees one line."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}\n{self.formatException(record.exc_info)}" if self.verbose else \
                f"{text}: {record.exc_info[1]}"
        if record.levelno >= logging.ERROR:
            return f"hpoqueue: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"hpoqueue: warning: {text}"
        if record.levelno >= logging.INFO:
            return text
        return f"hpoqueue: debug: {record.name}: {text}"


@contextmanager
def configured(verbosity: int = NORMAL) -> Iterator[None]:
    """hpoqueue's messages go to standard error at `verbosity` until the block ends, and only there (the
    caller's handlers, if any, get them again afterwards)."""
    logger = logging.getLogger(ROOT)
    saved = logger.level, logger.propagate, logger.handlers[:]
    handler = _Stderr()
    handler.setFormatter(_Lines(verbose=verbosity >= VERBOSE))
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(_LEVELS[max(QUIET, min(VERBOSE, verbosity))])
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate, logger.handlers = saved[1], saved[2]

