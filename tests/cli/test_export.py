"""`hpoqueue export` streams page by page and writes what it wrote when it read the whole experiment at once."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from hpoqueue.cli import export as export_module
from hpoqueue.cli.commands import main
from hpoqueue.states import TrialState
from hpoqueue.storage import Storage


@pytest.fixture
def url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Seven trials read 3 at a time; trial 7 alone has parameter `late`; trial 2 was retried."""
    monkeypatch.setattr(export_module, "PAGE", 3)
    with Storage(sqlite_url) as store:
        store.create_experiment("e", name=None, config={}, work_dir="/tmp/none", optimize_mode="minimize",
                                concurrency=1, max_trial_number=None, max_duration=None)
        params = [{"x": i, "tags": [i]} for i in range(6)] + [{"x": 6, "tags": [6], "late": "yes"}]
        for trial in store.create_trials("e", params):
            for step in range(3):
                store.add_metric(trial.id, 1, "intermediate", step, trial.seq + step / 10)
            store.transition(trial.id, TrialState.SUCCEEDED, expected=[TrialState.WAITING],
                             final_value=float(trial.seq))
        store.transition("e-2", TrialState.WAITING, expected=[TrialState.SUCCEEDED], attempt=2)
        store.add_metric("e-2", 2, "intermediate", 0, 42.0)
    return sqlite_url


def test_json_lists_every_trial_with_its_current_attempts_curve(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--storage", url, "export", "e", "--format", "json", "--intermediate"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out)
    assert out == json.dumps(rows, indent=2) + "\n"  # the layout of one json.dumps of the whole list
    assert [r["seq"] for r in rows] == list(range(1, 8))
    assert rows[1]["intermediate"] == [42.0]  # attempt 2 only
    assert rows[6] == {"trial": "e-7", "seq": 7, "state": "SUCCEEDED", "value": 7.0, "metrics": {}, "attempt": 1,
                       "parameters": {"x": 6, "tags": [6], "late": "yes"}, "started_at": None,
                       "ended_at": rows[6]["ended_at"], "intermediate": [7.0, 7.1, 7.2], "loss": []}


def test_csv_header_names_a_parameter_only_a_later_page_has(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert main(["--storage", url, "export", "e", "-o", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["trial", "seq", "state", "value", "attempt", "started_at", "ended_at", "x", "tags", "late"]
    assert [r[0] for r in rows[1:]] == [f"e-{i}" for i in range(1, 8)]
    assert rows[7][-3:] == ["6", "[6]", "yes"] and rows[1][-1] == ""


def test_an_experiment_without_trials_exports_an_empty_list(sqlite_url: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with Storage(sqlite_url) as store:
        store.create_experiment("z", name=None, config={}, work_dir="/tmp/none", optimize_mode="minimize",
                                concurrency=1, max_trial_number=None, max_duration=None)
    assert main(["--storage", sqlite_url, "export", "z", "--format", "json"]) == 0
    assert capsys.readouterr().out == "[]\n"
