"""What the CLI prints: rich tables and a live progress display on a terminal (a real pseudo-terminal here),
the plain text that scripts parse everywhere else (a pipe, NO_COLOR)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from datetime import datetime, timezone

import pytest

from hpoqueue.cli.progress import ProgressBar, render
from hpoqueue.cli.tables import clock
from hpoqueue.scheduler import Progress
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage

RED = "\x1b[31m"  #: FAILED's colour


def terminal(columns: int = 100) -> tuple[int, int]:
    """A pseudo-terminal (master, slave) `columns` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return master, slave


def read_all(master: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return b"".join(chunks).decode()


def cli(storage_url: str, *args: str, tty: bool, **env: str) -> str:
    """`hpoqueue ARGS` as its own process, its stdout a terminal or a pipe."""
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color", **env}
    command = [sys.executable, "-m", "hpoqueue", "--storage", storage_url, *args]
    if not tty:
        return subprocess.run(command, env=environ, capture_output=True, text=True, check=True).stdout
    master, slave = terminal()
    proc = subprocess.Popen(command, env=environ, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    out = read_all(master)
    assert proc.wait(timeout=60) == 0
    return out


@pytest.fixture
def experiment(sqlite_url: str) -> str:
    """Experiment `t`: four trials, the third FAILED, one with parameters too long for one terminal line."""
    with Storage(sqlite_url) as store:
        store.create_experiment("t", name=None, config={}, work_dir="/tmp/none", optimize_mode="minimize",
                                concurrency=1, max_trial_number=None, max_duration=None)
        params = [{"x": 1}, {"x": 2}, {"x": 3}, {"long": "y" * 150}]
        for i, trial in enumerate(store.create_trials("t", params)):
            state = TrialState.FAILED if i == 2 else TrialState.SUCCEEDED
            store.transition(trial.id, TrialState.RUNNING, expected=[TrialState.WAITING],
                             started_at=datetime.now(timezone.utc))  # a duration to show
            store.transition(trial.id, state, expected=[TrialState.RUNNING], final_value=None if i == 2 else i / 10)
    return sqlite_url


def test_trials_on_a_pipe_is_the_plain_table(experiment: str) -> None:
    lines = cli(experiment, "trials", "t", tty=False).splitlines()
    assert lines[0].split() == ["trial", "state", "value", "attempt", "duration", "host", "parameters"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert [line.split()[:3] for line in lines[2:5]] == [["t-1", "SUCCEEDED", "0"], ["t-2", "SUCCEEDED", "0.1"],
                                                         ["t-3", "FAILED", "-"]]
    assert "\x1b[" not in "\n".join(lines) and "y" * 150 in lines[5]


def test_trials_on_a_terminal_is_a_rich_table_fitted_to_its_width(experiment: str) -> None:
    out = cli(experiment, "trials", "t", tty=True)
    assert f"{RED}FAILED" in out  # states in colour
    lines = out.splitlines()
    assert all(len(_visible(line)) <= 100 for line in lines)  # the long parameters fold inside 100 columns
    assert "y" * 150 not in out and _visible(out).replace("\r\n", "").replace(" ", "").count("y") == 150


def test_no_color_gives_the_plain_table_on_a_terminal(experiment: str) -> None:
    out = cli(experiment, "trials", "t", tty=True, NO_COLOR="1").replace("\r\n", "\n")
    assert out == cli(experiment, "trials", "t", tty=False)


def _visible(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def progress(finished: int, *, failed: int = 0, best: float | None = None, state: ExperimentState =
             ExperimentState.RUNNING) -> Progress:
    return Progress(created=finished + 2, finished=finished, total=10, running=2, waiting=1, failed=failed,
                    best_value=best, best_trial="e-4" if best is not None else None, elapsed=20.0 * finished,
                    state=state)


def test_progress_on_a_log_is_plain_lines_when_they_change() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar(progress(0))
    bar(progress(1))  # within 5 s of the last line: not printed
    bar(progress(10, failed=1, best=0.25, state=ExperimentState.DONE))  # the last is always printed
    assert out.getvalue().splitlines() == [
        "[------------------------] 0/10 | running 2 | waiting 1 | failed 0 | best - | 00:00",
        "[########################] 10/10 | running 2 | waiting 1 | failed 1 | best 0.25 (e-4) | 03:20"]


def test_progress_on_a_terminal_is_a_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = terminal(80)
    with open(slave, "w") as stream, ProgressBar(stream, fps=1000) as bar:
        bar(progress(4, failed=1, best=0.5))
    raw = read_all(master)
    screen = _visible(raw)
    assert "4/10" in screen and "best 0.5 (e-4)" in screen
    assert "running 2" in screen and "waiting 1" in screen and "failed 1" in screen
    assert "elapsed 01:20" in screen and "ETA 02:00" in screen  # 4 done in 80 s: 6 more take 120 s
    assert raw.rstrip().endswith("\x1b[?25h")  # closed: the terminal has its cursor back


def test_plain_progress_line_names_the_pareto_front() -> None:
    p = Progress(created=3, finished=3, total=None, running=0, waiting=0, failed=0, best_value=None,
                 best_trial=None, elapsed=3725, state=ExperimentState.RUNNING, front=2)
    assert render(p) == "3 done | running 0 | failed 0 | pareto front 2 | 1:02:05"
    assert clock(59.9) == "00:59" and clock(-1) == "00:00"


@pytest.mark.parametrize("command", ["trials", "best", "list"])
def test_reading_commands_do_not_load_rich_redis_or_numpy(experiment: str, command: str) -> None:
    """`trials`, `best` and `list` on a pipe stay quick to start: what they print needs neither rich (a
    terminal's tables only) nor Redis, numpy or Celery (the scheduler's)."""
    args = [command] if command == "list" else [command, "t"]
    code = ("import sys; from hpoqueue.cli.commands import main\n"
            f"main(['--storage', {experiment!r}, *{args!r}])\n"
            "print(sorted(m for m in ('rich', 'redis', 'numpy', 'celery') if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "[]"
