"""The dashboard's snapshot of an experiment, brought up to date from what changed, gives the charts the same
data as one read in full, after the changes a running experiment's scheduler (and the CLI) write."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from hpoqueue.dashboard import charts, server
from hpoqueue.dashboard import snapshot as snapshot_module
from hpoqueue.dashboard.actions import Actions
from hpoqueue.dashboard.snapshot import Snapshot
from hpoqueue.states import TrialState
from hpoqueue.storage import Storage
from tests.dashboard.conftest import BIG, make_big_record

TRIALS = 400  #: past the charts' thresholds (with BAND_TRIALS lowered: a sampled band)


def every_chart(snapshot: Snapshot, chosen: list[str], now: float) -> dict[str, Any]:
    return {"progress": charts.progress(snapshot), "curves": charts.curves(snapshot, chosen),
            "params": charts.params(snapshot), "timeline": charts.timeline(snapshot, now)}


def finish(storage: Storage, tid: str, attempt: int, state: TrialState, value: float) -> None:
    """A trial's final result and end, as the scheduler writes them."""
    storage.add_metric(tid, attempt, "final", 0, value, {"default": value})
    storage.update_trial(tid, final_value=value, final_data={"default": value})
    storage.transition(tid, state, expected=[TrialState.RUNNING], exit_code=0)
    storage.add_event(tid, attempt, "finished", {"exit_code": 0})


def start(storage: Storage, tid: str, attempt: int, host: str, gpu: int) -> None:
    storage.transition(tid, TrialState.RUNNING, expected=[TrialState.WAITING], host=host, gpus=[gpu],
                       started_at=datetime.now(timezone.utc) - timedelta(seconds=5))
    storage.add_event(tid, attempt, "started", {"host": host, "gpus": [gpu]})


def test_an_updated_snapshot_draws_what_a_full_read_draws(sqlite_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    check_updates(sqlite_url, tmp_path, monkeypatch)


@pytest.mark.postgres
def test_an_updated_snapshot_on_postgresql(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_updates(postgres_url, tmp_path, monkeypatch)


def check_updates(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three rounds of changes as the scheduler and the CLI write them; after each, the snapshot brought up to
    date gives every chart what a snapshot read in full gives, and read only the trials that changed."""
    monkeypatch.setattr(charts, "BAND_TRIALS", 150)
    monkeypatch.setattr(snapshot_module, "SLACK", 0)  # only what changed is read again
    make_big_record(url, tmp_path / "work", TRIALS)
    with Storage(url) as storage:
        snapshot = Snapshot.read(storage, BIG)
        trials = snapshot.by_seq()
        running = [t.id for t in trials if t.state is TrialState.RUNNING]
        worst = max((t for t in trials if t.value is not None), key=lambda t: t.value or 0).id
        chosen = [worst, running[0]]
        every_chart(snapshot, chosen, 0.0)  # their intermediate results read and kept
        before = dict(snapshot.trials)

        # round 1: the first running trial reports on and succeeds, the best of all; the assessor stops the
        # second; new trials: one lost its worker and is retried (attempt 2 running), one runs, one waits
        for step in range(10, 14):
            storage.add_metric(running[0], 1, "intermediate", step, 0.01)
        finish(storage, running[0], 1, TrialState.SUCCEEDED, 0.001)
        storage.add_metric(running[1], 1, "intermediate", 10, 5.0)
        storage.transition(running[1], TrialState.EARLY_STOPPED, expected=[TrialState.RUNNING])
        storage.add_event(running[1], 1, "assessor_stop", {"step": 10})
        lost, runs, waits = (t.id for t in storage.create_trials(BIG, [{"lr": 0.01, "dropout": 0.1, "batch": 32,
                                                                        "opt": "adam"}] * 3))
        start(storage, lost, 1, "box0", 0)
        storage.add_metric(lost, 1, "intermediate", 0, 2.0)
        storage.add_event(lost, 1, "lost", {"heartbeat_timeout": 30})
        storage.transition(lost, TrialState.WAITING, expected=[TrialState.RUNNING], attempt=2, host=None,
                           started_at=None)
        start(storage, lost, 2, "box1", 3)
        storage.add_metric(lost, 2, "intermediate", 0, 1.5)
        start(storage, runs, 1, "box1", 2)
        storage.add_metric(runs, 1, "intermediate", 0, 1.2)
        snapshot.refresh()
        now = datetime.now(timezone.utc).timestamp()
        assert every_chart(snapshot, chosen, now) == every_chart(Snapshot.read(storage, BIG), chosen, now)
        assert [tid for tid in before if snapshot.trials[tid] is not before[tid]] == running  # nothing else read
        timeline = charts.timeline(snapshot, now)  # the lost first attempt beside the second
        assert timeline["attempts"] == TRIALS + 3 and "LOST" in timeline["states"]

        # round 2: the stopped trial reports once more before its process ends (a finished trial's metric); the
        # waiting one is killed (the CLI: no event); the retried one reports on (active: read on every refresh)
        before = dict(snapshot.trials)
        storage.add_metric(running[1], 1, "intermediate", 11, 4.9)
        storage.transition(waits, TrialState.USER_CANCELED, expected=[TrialState.WAITING])
        storage.add_metric(lost, 2, "intermediate", 1, 1.4)
        snapshot.refresh()
        assert every_chart(snapshot, chosen, now) == every_chart(Snapshot.read(storage, BIG), chosen, now)
        assert {tid for tid in before if snapshot.trials[tid] is not before[tid]} == {running[1], waits, lost, runs}

        # round 3: its process ended (a finished trial changes: value, exit code; an event, no metric)
        before = dict(snapshot.trials)
        storage.update_trial(running[1], final_value=4.9, exit_code=-15)
        storage.add_event(running[1], 1, "finished", {"exit_code": -15})
        snapshot.refresh()
        assert every_chart(snapshot, chosen, now) == every_chart(Snapshot.read(storage, BIG), chosen, now)
        assert snapshot.trials[running[1]].value == 4.9
        assert {tid for tid in before if snapshot.trials[tid] is not before[tid]} == {running[1], lost, runs}


def test_trials_gone_from_the_record_are_caught_by_the_counts(sqlite_url: str, tmp_path: Path) -> None:
    """An experiment deleted and submitted again under its id, with fewer trials: nothing new tells the
    snapshot that trials went away, the counts by state do, and it is read again in full."""
    make_big_record(sqlite_url, tmp_path / "work", 24)
    with Storage(sqlite_url) as storage:
        snapshot = Snapshot.read(storage, BIG)
        storage.delete_experiment(BIG)
        make_big_record(sqlite_url, tmp_path / "work", 12)
        snapshot.refresh()
        assert sorted(t.seq for t in snapshot.by_seq()) == list(range(1, 13))
        now = datetime.now(timezone.utc).timestamp()
        assert every_chart(snapshot, [], now) == every_chart(Snapshot.read(storage, BIG), [], now)


def test_the_dashboard_keeps_the_snapshots_of_the_experiments_used_last(sqlite_url: str, tmp_path: Path) -> None:
    """A long-running dashboard that is shown many experiments keeps the trials of the SNAPSHOTS used last in
    memory, not of every one it was ever shown."""
    with Storage(sqlite_url) as storage:
        ids = [f"exp{i}" for i in range(server.SNAPSHOTS + 3)]
        for exp_id in ids:
            storage.create_experiment(exp_id, name=None, config={"trialCommand": "true"}, work_dir=str(tmp_path),
                                      optimize_mode="minimize", concurrency=1, max_trial_number=None,
                                      max_duration=None)
        dash = server.Dashboard(storage, Actions(storage.url, "token", read_only=True), None)
        first = {exp_id: dash.snapshot(exp_id) for exp_id in ids[:server.SNAPSHOTS]}
        assert dash.snapshot(ids[0]) is first[ids[0]]  # asked for again: the same one, now the one used last
        first.update({exp_id: dash.snapshot(exp_id) for exp_id in ids[server.SNAPSHOTS:]})
        # the SNAPSHOTS used last are kept (asked for first: that drops none); the 3 used least recently were dropped
        kept = [ids[0], *ids[4:]]
        assert [exp_id for exp_id in kept if dash.snapshot(exp_id) is first[exp_id]] == kept
        assert not any(dash.snapshot(exp_id) is first[exp_id] for exp_id in ids[1:4])
