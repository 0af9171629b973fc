"""Assessor work on the worker side: rebuild the assessor from the message, decide, report STOP."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from hpoqueue.assessors import create_assessor
from hpoqueue.assessors._base import BaseAssessor, Decision
from hpoqueue.config import AlgorithmConfig
from hpoqueue.optimize_mode import OptimizeMode
from hpoqueue.protocol import Channel
from hpoqueue.records import TrialResult
from hpoqueue.states import TrialState


@cache
def _assessor(config_json: str, optimize_mode: OptimizeMode) -> BaseAssessor:
    raw = json.loads(config_json)
    config = AlgorithmConfig(name=raw.get("name"), class_name=raw.get("class_name"),
                             code_directory=Path(raw["code_directory"]) if raw.get("code_directory") else None,
                             class_args=raw.get("class_args") or {})
    return create_assessor(config, optimize_mode=optimize_mode)


def assessment_payload(exp_id: str, assessor: dict[str, Any], optimize_mode: OptimizeMode, trial: TrialResult,
                       attempt: int, history: list[TrialResult]) -> dict[str, Any]:
    """The JSON message for one assess task (the scheduler builds it; workers never read storage)."""
    def pack(t: TrialResult) -> list[Any]:
        return [t.seq, t.state.value, t.value, list(t.intermediate)]

    return {"exp_id": exp_id, "assessor": assessor, "optimize_mode": optimize_mode, "attempt": attempt,
            "trial": pack(trial), "history": [pack(h) for h in history]}


def _unpack(row: list[Any]) -> TrialResult:
    seq, state, value, values = row
    return TrialResult(seq=seq, params={}, state=TrialState(state), value=value,
                       intermediate=tuple(values))


def assess_and_report(payload: dict[str, Any], emit: Callable[..., None]) -> Decision:
    """Decide for one trial; a STOP goes back through `emit` as an event for the scheduler, which records
    it and stops the trial."""
    assessor = _assessor(json.dumps(payload["assessor"], sort_keys=True), payload["optimize_mode"])
    trial = _unpack(payload["trial"])
    decision = assessor.assess(trial, [_unpack(h) for h in payload["history"]])
    if decision is Decision.STOP:
        emit("assess", f"{payload['exp_id']}-{trial.seq}", payload["attempt"],
             decision=decision.value, step=len(trial.intermediate))
    return decision


def run_assessment(payload: dict[str, Any], *, broker_url: str) -> str:
    """The `hpoqueue.assess` task's work: decide, reporting through the experiment's event stream."""
    from hpoqueue.broker import redis_client

    return assess_and_report(payload, Channel(redis_client(broker_url), payload["exp_id"]).emit).value
