"""Signal handlers installed for the length of a block: how `hpoqueue` turns Ctrl-C and SIGTERM into
clean stops instead of leaving Redis, workers or trials behind, and outlives a closed terminal (SIGHUP)."""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Handler = Callable[[int, Any], None]


@contextmanager
def signals_handled(handler: Handler, *signums: int) -> Iterator[None]:
    """Run `handler` on `signums` inside the block, then restore the previous handlers. Outside the main
    thread (where Python allows no handler) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP for the length of the block, then deliver them to the handlers in
    place before: a process started inside is recorded for cleanup before a signal can end `hpoqueue`
    (a SIGTERM between starting Redis and registering its shutdown left it running)."""
    caught: list[int] = []
    with signals_handled(lambda signum, _frame: caught.append(signum),
                         signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        yield
    for signum in dict.fromkeys(caught):
        signal.raise_signal(signum)


def raise_interrupt(signum: int, frame: Any) -> None:
    """A handler that makes a signal end the command as Ctrl-C does."""
    raise KeyboardInterrupt


def outlive_terminal(log: Path) -> Handler:
    """A SIGHUP handler for a run in the foreground: the terminal is gone (window closed, SSH dropped), so
    go on as `submit --detach` does, writing what went to the terminal (anything but a file) to `log`."""

    def handler(signum: int, frame: Any) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for target in (1, 2):
                if not stat.S_ISREG(os.fstat(target).st_mode):
                    os.dup2(fd, target)
        finally:
            os.close(fd)
        os.write(2, b"hpoqueue: the terminal hung up (SIGHUP); the experiment goes on, its output continues here\n")

    return handler
