"""Metric validation and parsing: NNI's number-or-dict-with-'default' rule, metric lines, stdout regex."""

from __future__ import annotations

import json

import pytest

from hpoqueue.errors import MetricError
from hpoqueue.metrics import (
    InvalidMetricError,
    Metric,
    match_stdout,
    metric_line,
    parse_metric_line,
    scalar,
    stdout_pattern,
)

REJECTED = [float("nan"), float("inf"), -float("inf"), "abc", "0.5", None, True, False, [1.0],
            {"acc": 0.9}, {"default": "x"}, {"default": float("nan")}, {"default": True}]


@pytest.mark.parametrize("value,expected", [(3, 3.0), (-0.25, -0.25), ({"default": 0.5, "acc": 0.9}, 0.5)])
def test_scalar_accepts_numbers_and_dicts_with_default(value: object, expected: float) -> None:
    assert scalar(value) == expected


@pytest.mark.parametrize("value", REJECTED, ids=repr)
def test_scalar_rejects_with_a_clear_message(value: object) -> None:
    with pytest.raises(InvalidMetricError, match="metric must be a finite number or a dict with a numeric "
                                                 "'default'"):
        scalar(value)


def test_invalid_metric_is_both_a_metric_error_and_a_value_error() -> None:
    with pytest.raises(MetricError):
        scalar("abc")
    with pytest.raises(ValueError, match="got 'abc'"):
        scalar("abc")


def test_metric_line_round_trips_through_parse() -> None:
    line = metric_line("final", {"default": 0.5, "acc": 0.9})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert parse_metric_line(line) == Metric("final", 0.5, {"default": 0.5, "acc": 0.9})


def test_metric_line_rejects_nan_in_another_key() -> None:
    with pytest.raises(InvalidMetricError, match="finite numbers in every key"):
        metric_line("intermediate", {"default": 1.0, "acc": float("nan")})


@pytest.mark.parametrize("line", [
    "not json", json.dumps([1]), json.dumps({"kind": "other", "value": 1}), json.dumps({"kind": "final"}),
    '{"kind": "final", "value": NaN}', json.dumps({"kind": "final", "value": "abc"}),
])
def test_parse_metric_line_rejects_invalid_lines(line: str) -> None:
    with pytest.raises(InvalidMetricError):
        parse_metric_line(line)


def test_parse_metric_line_skips_blank_lines() -> None:
    assert parse_metric_line("  \n") is None


@pytest.mark.parametrize("line,value", [
    ("loss=0.25", "0.25"), ("loss: 0.25", "0.25"), ("epoch 3 loss=0.25", "0.25"), ("loss = -1e-3", "-1e-3"),
    ("epoch 1, loss=.5, acc=0.9", ".5"), ("loss=nan", "nan"),
    ("val_loss=0.3", None), ("loss is low", None), ("Loss=0.3", None),
])
def test_default_stdout_pattern(line: str, value: str | None) -> None:
    assert match_stdout(line, stdout_pattern("loss")) == value


def test_custom_stdout_pattern_needs_a_value_group() -> None:
    regex = stdout_pattern(pattern=r"^RESULT (?P<value>\S+)$")
    assert match_stdout("RESULT 42", regex) == "42"
    with pytest.raises(MetricError, match="no \\(\\?P<value>...\\) group"):
        stdout_pattern(pattern=r"RESULT (\S+)")
    with pytest.raises(MetricError, match="not a valid regular expression"):
        stdout_pattern(pattern=r"(?P<value>")
