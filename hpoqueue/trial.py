"""The API a trial calls, with NNI's names: ``import hpoqueue.trial as nni`` keeps NNI scripts unchanged.

Stdlib only and fast to import: a trial must not pay for Celery, Redis or numpy. Parameters come from the
``HPOQUEUE_PARAMETERS`` environment variable (JSON) or the file named by ``HPOQUEUE_PARAMETER_FILE``; each
report appends one JSON line to the file named by ``HPOQUEUE_METRIC_FILE``, which the runner reads.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from hpoqueue.errors import ConfigError
from hpoqueue.metrics import InvalidMetricError, MetricKind, metric_line

__all__ = [
    "InvalidMetricError",
    "get_current_parameter",
    "get_experiment_id",
    "get_next_parameter",
    "get_next_parameters",
    "get_output_dir",
    "get_parameter",
    "get_sequence_id",
    "get_trial_id",
    "report_final_result",
    "report_intermediate_result",
    "report_loss",
]

PARAMETERS_ENV = "HPOQUEUE_PARAMETERS"
PARAMETER_FILE_ENV = "HPOQUEUE_PARAMETER_FILE"
METRIC_FILE_ENV = "HPOQUEUE_METRIC_FILE"
#: NNI's names for the trial's identity and output directory, which the worker sets for every trial
PLATFORM_ENV, EXP_ID_ENV, TRIAL_ID_ENV = "NNI_PLATFORM", "NNI_EXP_ID", "NNI_TRIAL_JOB_ID"
SEQ_ID_ENV, OUTPUT_DIR_ENV = "NNI_TRIAL_SEQ_ID", "NNI_OUTPUT_DIR"
STANDALONE = "STANDALONE"

_warned: set[str] = set()
_current: dict[str, Any] | None = None


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _load_parameters() -> dict[str, Any] | None:
    """The trial's parameters, or None outside an experiment."""
    text, source = os.environ.get(PARAMETERS_ENV), PARAMETERS_ENV
    if text is None and os.environ.get(PARAMETER_FILE_ENV):
        source = os.environ[PARAMETER_FILE_ENV]
        try:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read the parameter file: {exc.strerror}", source=source,
                              hint=f"{PARAMETER_FILE_ENV} must name a readable JSON file") from None
    if text is None:
        return None
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"parameters are not valid JSON ({exc})", source=source) from None
    if not isinstance(params, dict):
        raise ConfigError(f"parameters must be a JSON object; got {type(params).__name__}", source=source)
    return params


def get_next_parameter() -> dict[str, Any]:
    """The parameters chosen for this trial; ``{}`` with a warning when run outside an experiment."""
    global _current
    params = _load_parameters()
    if params is None:
        _warn_once("params", f"hpoqueue.trial: not running inside an experiment ({PARAMETERS_ENV} and "
                             f"{PARAMETER_FILE_ENV} are unset); get_next_parameter() returns {{}}")
        params = {}
    _current = params
    return dict(params)


get_next_parameters = get_next_parameter
get_parameter = get_next_parameter


def get_current_parameter(tag: str | None = None) -> Any:
    """The parameters last returned by get_next_parameter (one of them when ``tag`` is given)."""
    params = _current if _current is not None else get_next_parameter()
    return dict(params) if tag is None else params[tag]


def _report(kind: MetricKind, metric: Any) -> None:
    line = metric_line(kind, metric)  # raises InvalidMetricError before anything is written
    path = os.environ.get(METRIC_FILE_ENV)
    if not path:
        _warn_once("metric", f"hpoqueue.trial: not running inside an experiment ({METRIC_FILE_ENV} is "
                             "unset); results are printed, not recorded")
        print(f"[hpoqueue] {kind} result: {line.strip()}", flush=True)
        return
    # One O_APPEND write per report: lines from forked processes never interleave mid-line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def report_intermediate_result(metric: Any) -> None:
    """Report a per-step result (a number, or a dict with a numeric 'default'); assessors judge these."""
    _report("intermediate", metric)


def report_final_result(metric: Any) -> None:
    """Report the trial's final result (a number, or a dict with a numeric 'default'); the tuner learns it."""
    _report("final", metric)


def report_loss(loss: Any) -> None:
    """Report a per-step loss (MLhub style): a curve of its own, named ``loss`` (``hpoqueue export
    --intermediate``); never the trial's result and never judged by assessors."""
    _report("loss", loss)


def get_trial_id() -> str:
    """The trial's id (``NNI_TRIAL_JOB_ID``, which the worker sets); ``'STANDALONE'`` outside."""
    return os.environ.get(TRIAL_ID_ENV) or STANDALONE


def get_experiment_id() -> str:
    """The experiment's id (``NNI_EXP_ID``); ``'STANDALONE'`` outside."""
    return os.environ.get(EXP_ID_ENV) or STANDALONE


def get_sequence_id() -> int:
    """The trial's sequence number (``NNI_TRIAL_SEQ_ID``); 0 outside."""
    return int(os.environ.get(SEQ_ID_ENV) or 0)


def get_output_dir() -> str:
    """Where the trial should write its files (``NNI_OUTPUT_DIR``); the working directory outside."""
    return os.environ.get(OUTPUT_DIR_ENV) or os.getcwd()
