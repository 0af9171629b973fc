"""Signal handlers installed for the length of a block: how `hpoqueue` turns Ctrl-C and SIGTERM into
clean stops instead of leaving Redis, workers or trials behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def raise_interrupt(signum: int, frame: Any) -> None:
    """A handler that makes a signal end the command as Ctrl-C does."""
    raise KeyboardInterrupt
