"""The CLI's tables and durations: rich tables (colour, fitted to the terminal's width) on a terminal, plain
aligned text elsewhere (a pipe, a file, NO_COLOR), which scripts and tests parse and which loads no rich."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

#: colours of the trial, experiment and worker states in a terminal's tables and progress display
STATE_STYLES = {"SUCCEEDED": "green", "DONE": "green", "RUNNING": "cyan", "WAITING": "yellow",
                "FAILED": "red", "ERROR": "red", "LOST": "red", "TIMEOUT": "magenta",
                "EARLY_STOPPED": "blue", "USER_CANCELED": "dim", "STOPPED": "dim", "DEAD": "red"}


def styled(stream: TextIO) -> bool:
    """Whether `stream` gets rich output: a terminal, without NO_COLOR (no-color.org) or TERM=dumb."""
    try:
        tty = stream.isatty()
    except (OSError, ValueError):  # closed, or a terminal that hung up
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def clock(seconds: float) -> str:
    """A duration as a clock, `MM:SS` or `H:MM:SS`, for tables and the progress display."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _numeric(rows: Sequence[Sequence[Any]], column: int) -> bool:
    return bool(rows) and all(isinstance(r[column], int | float) or r[column] is None for r in rows)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain text: a header line, a line of dashes, then the rows; numeric columns are right-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    numeric = [_numeric(rows, i) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in text)
    return "\n".join(out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], file: TextIO | None = None) -> None:
    """`table()` on `file` (stdout), or on a terminal a rich table: states in colour, long cells folded to
    fit the terminal's width instead of wrapping the whole line."""
    out = file if file is not None else sys.stdout
    if not styled(out):
        print(table(headers, rows), file=out)
        return
    from rich import box  # about 50 ms: loaded only when a terminal shows the table
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for i, header in enumerate(headers):
        grid.add_column(header, justify="right" if _numeric(rows, i) else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell(v), style=STATE_STYLES.get(cell(v).upper(), "") if h == "state" else "")
                       for h, v in zip(headers, row, strict=True)))
    Console(file=out, highlight=False).print(grid)
