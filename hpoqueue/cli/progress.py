"""What `hpoqueue submit` shows while an experiment runs: on a terminal a live rich display (a bar with the
best so far, the trials by state, elapsed time and ETA); elsewhere (a log, a pipe, NO_COLOR) plain lines."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from hpoqueue.cli.tables import STATE_STYLES, clock, styled

if TYPE_CHECKING:
    from hpoqueue.scheduler import Progress


def _best(p: Progress) -> str:
    if p.front is not None:
        return f"pareto front {p.front}"
    return f"best {p.best_value:.6g} ({p.best_trial})" if p.best_value is not None else "best -"


def eta(p: Progress) -> float | None:
    """Seconds left at the pace so far (None until a trial has finished, or without a trial budget)."""
    if not p.total or not p.finished:
        return None
    return max(p.elapsed * (p.total - p.finished) / p.finished, 0.0)


def render(p: Progress, width: int = 24) -> str:
    """`[######------] 12/50 | running 2 | failed 1 | best 0.0123 (abc-7) | 00:32`, the plain line."""
    if p.total:
        filled = int(width * min(p.finished / p.total, 1.0))
        bar = "[" + "#" * filled + "-" * (width - filled) + "] "
        count = f"{p.finished}/{p.total}"
    else:
        bar, count = "", f"{p.finished} done"
    waiting = f" | waiting {p.waiting}" if p.waiting else ""
    return f"{bar}{count} | running {p.running}{waiting} | failed {p.failed} | {_best(p)} | {clock(p.elapsed)}"


def live_view(p: Progress) -> Any:
    """The terminal's display: bar, done/total, best so far; then the trials by state; then elapsed and ETA."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar as Bar
    from rich.table import Table
    from rich.text import Text

    top = Table.grid(padding=(0, 1))
    top.add_row(Bar(total=p.total or None, completed=p.finished, width=30),
                Text(f"{p.finished}/{p.total}" if p.total else f"{p.finished} done", style="bold"),
                Text(_best(p), style="bold green" if p.best_value is not None or p.front else "dim"))
    counts = Text("trials  ")
    for name, n, style in (("running", p.running, STATE_STYLES["RUNNING"]),
                           ("waiting", p.waiting, STATE_STYLES["WAITING"]),
                           ("finished", p.finished, STATE_STYLES["SUCCEEDED"]),
                           ("failed", p.failed, STATE_STYLES["FAILED"])):  # failed: among the finished
        counts.append(f"{name} {n}", style=style if n else "dim")
        counts.append("  ")
    left = eta(p)
    times = Text(f"elapsed {clock(p.elapsed)}" + (f"  ETA {clock(left)}" if left is not None else ""), style="dim")
    return Group(top, counts, times)


class ProgressBar:
    """The `on_progress` of a run: redraws at most `fps` times a second on a terminal, prints a plain line
    every few seconds (when it changed) elsewhere; whether the stream is a terminal is asked each time
    (the terminal may hang up and the stream go to a log). Close it (or use it in `with`) when the run
    ends, so that the terminal gets its cursor back."""

    def __init__(self, stream: TextIO = sys.stderr, fps: float = 5.0) -> None:
        self.stream = stream
        self.fps = fps
        self._last = 0.0
        self._last_text = ""
        self._live: Any = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        final = progress.state.is_finished()
        tty = styled(self.stream)
        if not final and now - self._last < (1.0 / self.fps if tty else 5.0):
            return
        self._last = now
        try:
            if tty:
                self._show(progress)
            else:
                self.close()
                text = render(progress)
                if text != self._last_text or final:
                    self.stream.write(text + "\n")
                    self.stream.flush()
                self._last_text = text
            if final:
                self.close()
        except OSError:  # a terminal that hung up (EIO) or a closed pipe: the experiment goes on regardless
            self._live = None

    def _show(self, progress: Progress) -> None:
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream, highlight=False), auto_refresh=False)
            self._live.start()
        self._live.update(live_view(progress), refresh=True)

    def close(self) -> None:
        """Leave the last display on the terminal and give the cursor back; nothing when none is shown."""
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except OSError:
                pass
