"""The one-line progress bar `hpoqueue submit` shows: trials done/total, running, failed, best so far."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from hpoqueue.scheduler import Progress


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def render(p: Progress, width: int = 24) -> str:
    """`[######------] 12/50 | running 2 | failed 1 | best 0.0123 (abc-7) | 00:32`"""
    if p.total:
        filled = int(width * min(p.finished / p.total, 1.0))
        bar = "[" + "#" * filled + "-" * (width - filled) + "] "
        count = f"{p.finished}/{p.total}"
    else:
        bar, count = "", f"{p.finished} done"
    best = f"{p.best_value:.6g} ({p.best_trial})" if p.best_value is not None else "-"
    best = f"best {best}" if p.front is None else f"pareto front {p.front}"
    waiting = f" | waiting {p.waiting}" if p.waiting else ""
    return (f"{bar}{count} | running {p.running}{waiting} | failed {p.failed} | {best} | "
            f"{format_duration(p.elapsed)}")


class ProgressBar:
    """Redraws at most `fps` times a second on a terminal; prints plain lines every few seconds elsewhere
    (asked each time: the terminal may hang up and the stream go to a log)."""

    def __init__(self, stream: TextIO = sys.stderr, fps: float = 5.0) -> None:
        self.stream = stream
        self.fps = fps
        self._last = 0.0
        self._last_text = ""

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        final = progress.state.is_finished()
        tty = self.stream.isatty()
        if not final and now - self._last < (1.0 / self.fps if tty else 5.0):
            return
        self._last = now
        text = render(progress)
        try:
            if tty:
                self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            elif text != self._last_text or final:
                self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:  # a terminal that hung up (EIO) or a closed pipe: the experiment goes on regardless
            pass
        self._last_text = text
