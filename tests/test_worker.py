"""The worker side of one attempt against a real Redis, without Celery: claim once, honour an early stop,
relay metrics and the end in order."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis

from hpoqueue.protocol import Channel, TrialSpec
from hpoqueue.worker import execute_attempt

TRIAL = "import pathlib; pathlib.Path('ran').touch(); print('loss=0.5'); print('loss=0.25')"


def _spec(tmp_path: Path, exp_id: str) -> TrialSpec:
    (tmp_path / "trial.py").write_text(TRIAL)
    return TrialSpec(exp_id=exp_id, trial_id=f"{exp_id}-1", seq=1, attempt=1, params={"x": 1},
                     command=f"{sys.executable} trial.py", code_dir=str(tmp_path), work_dir=str(tmp_path / "exp"),
                     metric_name="loss")


def _events(url: str, exp_id: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    return [json.loads(fields[b"e"]) for _id, fields in client.xrange(Channel(client, exp_id).events_key)]


def _run(spec: TrialSpec, url: str) -> str:
    return execute_attempt(spec.to_dict(), queue="cpu", hostname="test", broker_url=url)


def test_an_attempt_runs_once_and_reports_started_metrics_finished(tmp_path: Path, redis_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = _spec(tmp_path, "wk1")
    assert _run(spec, redis_url) == "exited with 0"
    assert _run(spec, redis_url) == "duplicate delivery ignored"
    events = _events(redis_url, "wk1")
    assert [e["type"] for e in events] == ["started", "metric", "metric", "finished"]
    assert [e["value"] for e in events if e["type"] == "metric"] == [0.5, 0.25]
    assert [e["step"] for e in events if e["type"] == "metric"] == [0, 1]
    assert Channel(redis.Redis.from_url(redis_url), "wk1").heartbeats() == {}  # ended with the attempt


def test_a_stop_asked_before_the_attempt_started_keeps_the_command_from_running(
        tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
    spec = _spec(tmp_path, "wk2")
    Channel(redis.Redis.from_url(redis_url), "wk2").stop(spec.attempt_id, "user_canceled")
    assert _run(spec, redis_url) == "stopped before start"
    [event] = _events(redis_url, "wk2")
    assert (event["type"], event["reason"], event["stop_reason"]) == ("finished", "stopped", "user_canceled")
    assert not (tmp_path / "ran").exists()
