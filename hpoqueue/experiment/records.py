"""Whole experiments as records: one read from an `export --format json` file, one deleted with its
directory."""

from __future__ import annotations

import json
import math
import numbers
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hpoqueue.config.experiment_config import config_from_dict, default_working_directory
from hpoqueue.errors import ConfigError, HpoQueueError, read_text
from hpoqueue.metrics import scalar
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage

#: a trial exported while still in flight is imported as ended by the user
_IN_FLIGHT = {TrialState.WAITING.value, TrialState.RUNNING.value}


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _time(value: Any, fail: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise fail(f"{value!r} is not an ISO date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_export(path: Path) -> list[dict[str, Any]]:
    """The trials of an export file, checked entry by entry (nothing is written before all pass)."""
    source = str(path)
    text = read_text(path, ConfigError, "export file", "give a file written by `hpoqueue export --format json`")
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not valid JSON ({exc})", source=source) from None
    if not isinstance(rows, list):
        raise ConfigError("must be a JSON list of trials, as `hpoqueue export --format json` writes", source=source)
    trials = []
    states = [s.value for s in TrialState]
    for i, row in enumerate(rows):
        def fail(problem: str, key: str | None = None, _i: int = i) -> ConfigError:
            return ConfigError(problem, source=source, field=f"[{_i}]" + (f".{key}" if key else ""))

        if not isinstance(row, dict) or not isinstance(row.get("parameters"), dict):
            raise fail("each trial must be an object with a 'parameters' object")
        state = row.get("state")
        if state not in states:
            raise fail(f"state must be one of {', '.join(states)}, not {state!r}", "state")
        value, metrics = row.get("value"), row.get("metrics") or {}
        if value is not None and not _number(value):
            raise fail(f"must be a finite number or null, not {value!r}", "value")
        if not isinstance(metrics, dict):
            raise fail(f"must be an object, not {metrics!r}", "metrics")
        curves = {key: row.get(key) or [] for key in ("intermediate", "loss")}
        for key, curve in curves.items():
            try:
                if not isinstance(curve, list):
                    raise ValueError(f"must be a list, not {curve!r}")
                for step in curve:
                    scalar(step)
            except ValueError as exc:
                raise fail(str(exc), key) from None
        trials.append({"params": row["parameters"], "state": state, "value": value, "metrics": metrics,
                       "curves": curves, "started_at": _time(row.get("started_at"), lambda p: fail(p, "started_at")),
                       "ended_at": _time(row.get("ended_at"), lambda p: fail(p, "ended_at"))})
    return trials


def import_experiment(storage: Storage, path: Path, exp_id: str, *, name: str | None, optimize_mode: str) -> int:
    """Record the export file `path` as finished experiment `exp_id`; returns its number of trials."""
    trials = read_export(path)
    work_dir = default_working_directory() / exp_id
    config = config_from_dict({
        "experimentName": name or path.stem, "searchSpace": {}, "trialCommand": "true", "trialConcurrency": 1,
        "maxTrialNumber": max(1, len(trials)),
        "tuner": {"name": "Random", "classArgs": {"optimize_mode": optimize_mode}},
    }, source=str(path))
    note = f"imported from {path.name}"
    with storage.transaction():
        storage.create_experiment(exp_id, name=config.experiment_name, config=config.to_dict(), work_dir=str(work_dir),
                                  optimize_mode=optimize_mode, concurrency=1, max_trial_number=config.max_trial_number,
                                  max_duration=None)
        records = storage.create_trials(exp_id, [t["params"] for t in trials])
        for record, trial in zip(records, trials, strict=True):
            state = TrialState.USER_CANCELED if trial["state"] in _IN_FLIGHT else TrialState(trial["state"])
            data = {"default": trial["value"], **trial["metrics"]} if trial["metrics"] else trial["value"]
            storage.transition(record.id, state, expected=[TrialState.WAITING], final_value=trial["value"],
                               final_data=data, started_at=trial["started_at"], ended_at=trial["ended_at"],
                               exit_reason=note)
            if trial["value"] is not None:
                storage.add_metric(record.id, 1, "final", 0, trial["value"], data)
            for kind, curve in trial["curves"].items():
                for step, value in enumerate(curve):
                    storage.add_metric(record.id, 1, kind, step, scalar(value), value)
        storage.set_experiment_state(exp_id, ExperimentState.DONE, message=note)
    work_dir.mkdir(parents=True, exist_ok=True)
    return len(trials)


def delete_experiment(storage: Storage, exp_id: str) -> Path | None:
    """Remove a finished experiment from the record, and its directory; returns the directory removed."""
    exp = storage.get_experiment(exp_id)
    if exp.state is ExperimentState.RUNNING:
        raise HpoQueueError(f"experiment {exp_id} is running; stop it first (`hpoqueue stop {exp_id}`), then delete it")
    storage.delete_experiment(exp_id)
    work_dir = Path(exp.work_dir)
    if work_dir.name == exp_id and work_dir.is_dir():  # only ever the experiment's own directory
        shutil.rmtree(work_dir, ignore_errors=True)
        return work_dir
    return None
