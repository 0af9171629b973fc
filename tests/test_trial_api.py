"""The trial API (`import hpoqueue.trial as nni`): parameters in, validated metric lines out, light import."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import hpoqueue.trial as nni
from hpoqueue.errors import ConfigError

ENV_NAMES = ["HPOQUEUE_PARAMETERS", "HPOQUEUE_PARAMETER_FILE", "HPOQUEUE_METRIC_FILE", "NNI_TRIAL_JOB_ID",
             "NNI_EXP_ID", "NNI_TRIAL_SEQ_ID", "NNI_OUTPUT_DIR"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside any experiment, with the warn-once memory cleared."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(nni, "_warned", set())
    monkeypatch.setattr(nni, "_current", None)


@pytest.fixture
def metric_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("HPOQUEUE_METRIC_FILE", str(path))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_parameters_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_PARAMETERS", json.dumps({"lr": 0.1, "opt": "adam"}))
    assert nni.get_next_parameter() == {"lr": 0.1, "opt": "adam"}
    assert nni.get_parameter() == nni.get_next_parameters() == {"lr": 0.1, "opt": "adam"}
    assert nni.get_current_parameter("opt") == "adam"


def test_parameters_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "parameter.json"
    path.write_text(json.dumps({"layers": [64, 32]}))
    monkeypatch.setenv("HPOQUEUE_PARAMETER_FILE", str(path))
    assert nni.get_next_parameter() == {"layers": [64, 32]}


@pytest.mark.parametrize("text,problem", [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_parameters_name_the_source(monkeypatch: pytest.MonkeyPatch, text: str, problem: str) -> None:
    monkeypatch.setenv("HPOQUEUE_PARAMETERS", text)
    with pytest.raises(ConfigError, match=f"HPOQUEUE_PARAMETERS: .*{problem}"):
        nni.get_next_parameter()


def test_missing_parameter_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_PARAMETER_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="absent.json: cannot read the parameter file"):
        nni.get_next_parameter()


def test_outside_an_experiment_warns_once_and_returns_empty() -> None:
    with pytest.warns(RuntimeWarning, match="not running inside an experiment"):
        assert nni.get_next_parameter() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nni.get_next_parameter() == {}


def test_reports_append_one_json_line_each(metric_file: Path) -> None:
    nni.report_intermediate_result(0.5)
    nni.report_intermediate_result({"default": 0.4, "acc": 0.8})
    nni.report_final_result(0.3)
    nni.report_loss(0.2)
    assert lines(metric_file) == [
        {"kind": "intermediate", "value": 0.5},
        {"kind": "intermediate", "value": {"default": 0.4, "acc": 0.8}},
        {"kind": "final", "value": 0.3},
        {"kind": "loss", "value": 0.2},  # its own curve, never the result
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "x", True, {"acc": 0.9}, None], ids=repr)
@pytest.mark.parametrize("report", [nni.report_intermediate_result, nni.report_final_result])
def test_invalid_reports_raise_and_write_nothing(metric_file: Path, report: Callable[[object], None],
                                                 value: object) -> None:
    with pytest.raises(ValueError, match="metric must be a finite number or a dict with a numeric 'default'"):
        report(value)
    assert not metric_file.exists()


def test_report_outside_an_experiment_prints(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(RuntimeWarning, match="results are printed"):
        nni.report_final_result(0.25)
    assert '"value": 0.25' in capsys.readouterr().out


def test_ids_come_from_the_nni_names_the_worker_sets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ids = (nni.get_trial_id(), nni.get_experiment_id(), nni.get_sequence_id())
    assert ids == ("STANDALONE", "STANDALONE", 0)
    for name, value in [("NNI_TRIAL_JOB_ID", "Ab3dE"), ("NNI_EXP_ID", "exp1"), ("NNI_TRIAL_SEQ_ID", "7"),
                        ("NNI_OUTPUT_DIR", str(tmp_path))]:
        monkeypatch.setenv(name, value)
    assert (nni.get_trial_id(), nni.get_experiment_id(), nni.get_sequence_id(), nni.get_output_dir()) == (
        "Ab3dE", "exp1", 7, str(tmp_path))


def test_import_pulls_in_no_heavy_modules() -> None:
    code = ("import sys, hpoqueue.trial; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('celery', 'kombu', 'redis', 'numpy', 'sqlalchemy')); print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
