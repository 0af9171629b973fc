"""Fuzzing what users and trials hand in (issue 17): any config text is a config or one ConfigError, any
metric-file or stdout line is a finite metric or an InvalidMetricError, and a trial writing such lines
never stops its runner. Hypothesis, bounded to about 30 s in all."""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpoqueue.config.experiment_config import load_config
from hpoqueue.errors import HpoQueueError
from hpoqueue.experiment.launch import check
from hpoqueue.metrics import InvalidMetricError, match_stdout, parse_metric_line, stdout_pattern, stdout_value
from hpoqueue.worker.runner import RunSpec, TrialRunner

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
FIELDS = ["trialCommand", "trialConcurrency", "maxTrialNumber", "maxTrialDuration", "maxExperimentDuration",
          "trialGpuNumber", "searchSpace", "tuner", "assessor", "trainingService", "heartbeatTimeout",
          "maxTrialRetries", "metricName", "metricPattern", "broker", "storage", "experimentName"]
GOOD: dict[str, Any] = {"trialCommand": "python trial.py", "trialConcurrency": 1, "maxTrialNumber": 2,
                        "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}


def _load(path: Path, text: str) -> None:
    """Load and check the config: it passes, or fails with an HpoQueueError of one line."""
    path.write_text(text)
    try:
        config = load_config(path)
        check(config.with_overrides(broker=None, experiment_working_directory=path.parent / "exps"))
    except HpoQueueError as exc:
        assert "\n" not in str(exc), str(exc)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=values)
def test_any_value_of_any_field_is_a_config_or_one_line(tmp_path: Path, field: str, value: Any) -> None:
    _load(tmp_path / "config.yml", yaml.safe_dump({**GOOD, field: value}))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#% \n\tabx01.e")), max_size=200))
def test_any_yaml_text_is_a_config_or_one_line(tmp_path: Path, text: str) -> None:
    _load(tmp_path / "config.yml", text)


def _finite(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


json_lines = st.one_of(
    st.text(max_size=80),
    st.builds(lambda kind, value: json.dumps({"kind": kind, "value": value}),
              st.sampled_from(["intermediate", "final", "other"]), values),
    st.builds(lambda number, key: f'{{"kind": "final", "value": {{"default": {number}, "{key}": {number}}}}}',
              st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "0.5", "1" * 400]), st.text(
                  alphabet="abc", min_size=1, max_size=3)),
)


@FUZZ
@given(line=json_lines)
def test_any_metric_file_line_is_a_finite_metric_or_rejected(line: str) -> None:
    try:
        metric = parse_metric_line(line)
    except InvalidMetricError:
        return
    assert metric is None or (math.isfinite(metric.value) and _finite(metric.data))


@FUZZ
@given(line=st.builds(lambda pre, sep, value, post: f"{pre}loss{sep}{value}{post}",
                      st.sampled_from(["", " ", "epoch 3 ", "val_"]), st.sampled_from(["=", ": ", " = "]),
                      st.text(alphabet="0123456789.eE+-xabnifINF_", max_size=12),
                      st.sampled_from(["", " ", ".", ",", "abc", " acc=1"])))
def test_any_stdout_line_is_a_finite_number_that_ends_or_rejected(line: str) -> None:
    regex = stdout_pattern("loss")
    text = match_stdout(line, regex)
    if text is None:
        return
    try:
        value = stdout_value(text)
    except InvalidMetricError:
        return
    assert math.isfinite(value) and value == float(text)
    after = line[regex.search(line).end("value"):]  # type: ignore[union-attr]
    assert not after[:1].isalnum() and after[:1] != "_" and not (after[:1] == "." and after[1:2].isalnum()), \
        f"{line!r} gave {value} from the start of a longer word"


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(json_lines, min_size=1, max_size=6))
def test_a_trial_writing_any_metric_lines_never_stops_its_runner(tmp_path: Path, lines: list[str]) -> None:
    """A real trial process appends the lines; the runner reports only finite metrics and ends normally."""
    lines_file = tmp_path / "lines.json"
    lines_file.write_text(json.dumps([line.replace("\n", " ").replace("\r", " ") for line in lines]))
    script = ("import json, os, sys; fh = open(os.environ['HPOQUEUE_METRIC_FILE'], 'a'); "
              "[fh.write(line + '\\n') for line in json.load(open(sys.argv[1]))]")
    reported: list[Any] = []
    spec = RunSpec(command=f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} {lines_file}", cwd=tmp_path,
                   env=dict(os.environ), stdout_path=tmp_path / "out", stderr_path=tmp_path / "err",
                   metric_path=tmp_path / f"metrics-{os.urandom(4).hex()}.jsonl",
                   log_path=tmp_path / "trial.log", poll_interval=0.02)
    outcome = TrialRunner(spec, on_metrics=reported.extend).run()
    assert outcome.reason == "exited" and outcome.exit_code == 0, (tmp_path / "err").read_text()
    assert all(math.isfinite(m.value) and _finite(m.data) for m in reported)
    assert len(reported) + outcome.metrics_rejected == sum(1 for line in lines if line.replace("\n", " ").strip())
