"""One logging setup: the CLI's notes, warnings and debug lines reach standard error one line each;
`--verbose` adds the debug lines, `--quiet` keeps warnings and errors only, before or after the command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.cli.commands import build_parser, main
from hpoqueue.states import TrialState
from hpoqueue.storage import Storage

NNI_DATA = Path(__file__).resolve().parents[1] / "data" / "nni"


@pytest.fixture
def export(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An export file of a finished experiment of two trials, for `hpoqueue import` (which notes its count)."""
    monkeypatch.setenv("HPOQUEUE_HOME", str(tmp_path / "home"))
    with Storage(sqlite_url) as store:
        store.create_experiment("e", name=None, config={}, work_dir=str(tmp_path), optimize_mode="minimize",
                                concurrency=1, max_trial_number=None, max_duration=None)
        for trial, value in zip(store.create_trials("e", [{"x": 1}, {"x": 2}]), [0.5, 0.25], strict=True):
            store.transition(trial.id, TrialState.SUCCEEDED, expected=[TrialState.WAITING], final_value=value)
    path = tmp_path / "e.json"
    assert main(["--storage", sqlite_url, "export", "e", "--format", "json", "-o", str(path)]) == 0
    return path


def stderr_of(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


def test_a_note_shows_by_default_and_quiet_hides_it(sqlite_url: str, export: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = stderr_of(capsys, "--storage", sqlite_url, "import", str(export))
    assert code == 0 and len(lines) == 1 and lines[0].startswith("imported 2 trial(s) as finished experiment ")
    for argv in (["--quiet", "--storage", sqlite_url, "import", str(export)],
                 ["--storage", sqlite_url, "import", str(export), "-q"]):
        code, lines = stderr_of(capsys, *argv)
        assert code == 0 and lines == []


def test_verbose_adds_debug_lines_naming_their_module(sqlite_url: str, export: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    opening = f"hpoqueue: debug: hpoqueue.storage._engine: opening the database {sqlite_url}"
    for argv in (["-v", "--storage", sqlite_url, "trials", "e"], ["--storage", sqlite_url, "trials", "e", "--verbose"]):
        code, lines = stderr_of(capsys, *argv)
        assert code == 0 and opening in lines
    code, lines = stderr_of(capsys, "--storage", sqlite_url, "trials", "e")
    assert code == 0 and not [line for line in lines if "debug" in line]


def test_a_warning_reaches_the_user_as_one_line_also_when_quiet(sqlite_url: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Three ranges with low == high: three warnings, one line each, then the error (no such experiment)."""
    for quiet in ([], ["--quiet"]):
        code, lines = stderr_of(capsys, *quiet, "--storage", sqlite_url, "update", "nosuch", "--search-space",
                                str(NNI_DATA / "constant_ranges.json"))
        assert code == 2 and len(lines) == 4, lines
        assert all(line.startswith("hpoqueue: warning: ") and ": low == high, so " in line for line in lines[:3])
        assert lines[3].startswith("hpoqueue: error: ")


def test_the_cli_gives_the_logging_setup_back(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """main() called from Python leaves the caller's logging as it was (as it does the umask)."""
    logger = logging.getLogger("hpoqueue")
    before = logger.level, logger.propagate, list(logger.handlers)
    main(["--quiet", "--storage", sqlite_url, "list"])
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_db_upgrade_takes_verbose_after_the_subcommand(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`hpoqueue db upgrade -v` as `hpoqueue -v db upgrade` (the options were once only before the command)."""
    for argv in (["-v", "--storage", sqlite_url, "db", "upgrade"], ["--storage", sqlite_url, "db", "upgrade", "-v"],
                 ["--storage", sqlite_url, "db", "--verbose", "upgrade"]):
        code, lines = stderr_of(capsys, *argv)
        assert code == 0 and any(line.startswith("hpoqueue: debug: ") for line in lines), (argv, lines)
    code, lines = stderr_of(capsys, "--storage", sqlite_url, "db", "upgrade", "-q")
    assert code == 0 and lines == []


def test_every_command_and_subcommand_takes_verbose_and_quiet() -> None:
    def parsers(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        found = [(path, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += parsers(child, (*path, name))
        return found

    every = parsers(build_parser(), ())
    assert len(every) > 20 and ("db", "upgrade") in [path for path, _ in every]
    for path, parser in every:
        options = {o for action in parser._actions for o in action.option_strings}
        assert {"-v", "--verbose", "-q", "--quiet"} <= options, path
