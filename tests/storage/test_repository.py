"""The Storage API on SQLite and PostgreSQL: experiments, trials, CAS transitions, metrics, events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hpoqueue.errors import NotFoundError, StorageError
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import ExperimentRecord, Storage, default_storage_url

W, R = TrialState.WAITING, TrialState.RUNNING


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


def test_default_storage_url_is_a_sqlite_file_in_home(tmp_path: Path) -> None:
    url = default_storage_url(tmp_path)
    assert url == f"sqlite:///{tmp_path}/hpoqueue.db"
    Storage(url).close()
    assert (tmp_path / "hpoqueue.db").is_file()


def test_sqlite_creates_missing_parent_directories(tmp_path: Path) -> None:
    Storage(f"sqlite:///{tmp_path}/a/b/hpoqueue.db").close()
    assert (tmp_path / "a" / "b" / "hpoqueue.db").is_file()


# --- experiments ----------------------------------------------------------------------------------------

def test_create_experiment_starts_running_at_seq_1(store: Storage, make_experiment) -> None:
    created = make_experiment(store, "e1", max_trial_number=None, max_duration=None)
    assert created.state is ExperimentState.RUNNING
    assert created.next_seq == 1 and created.ended_at is None and created.message is None
    assert is_utc(created.created_at) and is_utc(created.started_at)
    assert store.get_experiment("e1") == created
    assert created.config == {"trialCommand": "python train.py"}
    assert created.max_trial_number is None and created.max_duration is None


def test_get_unknown_experiment_names_it_and_the_fix(store: Storage) -> None:
    with pytest.raises(NotFoundError, match=r"no experiment 'nope' \(see `hpoqueue list`\)"):
        store.get_experiment("nope")


def test_duplicate_experiment_id_is_refused(store: Storage, exp: ExperimentRecord, make_experiment) -> None:
    with pytest.raises(StorageError, match="experiment 'exp1' already exists"):
        make_experiment(store, exp.id, name="again")
    assert store.get_experiment(exp.id).name == "demo"


def test_list_experiments_newest_first(store: Storage, make_experiment) -> None:
    assert store.list_experiments() == []
    for exp_id in ("a", "b", "c"):
        make_experiment(store, exp_id)
    assert [e.id for e in store.list_experiments()] == ["c", "b", "a"]


def test_set_experiment_state_is_compare_and_set(store: Storage, exp: ExperimentRecord) -> None:
    running = [ExperimentState.RUNNING]
    assert store.set_experiment_state(exp.id, ExperimentState.DONE, expected=running, message="budget spent")
    assert not store.set_experiment_state(exp.id, ExperimentState.STOPPED, expected=running)
    done = store.get_experiment(exp.id)
    assert done.state is ExperimentState.DONE and done.message == "budget spent" and is_utc(done.ended_at)
    # resume: RUNNING again clears ended_at
    assert store.set_experiment_state(exp.id, ExperimentState.RUNNING)
    assert store.get_experiment(exp.id).ended_at is None
    with pytest.raises(NotFoundError):
        store.set_experiment_state("nope", ExperimentState.DONE)


def test_update_experiment_changes_only_given_budgets(store: Storage, exp: ExperimentRecord) -> None:
    updated = store.update_experiment(exp.id, concurrency=8)
    assert (updated.concurrency, updated.max_trial_number, updated.max_duration) == (8, 10, 3600.0)
    updated = store.update_experiment(exp.id, max_trial_number=50, max_duration=60.5)
    assert (updated.concurrency, updated.max_trial_number, updated.max_duration) == (8, 50, 60.5)
    assert store.get_experiment(exp.id) == updated
    with pytest.raises(NotFoundError):
        store.update_experiment("nope", concurrency=1)


# --- trials ---------------------------------------------------------------------------------------------

def test_create_trials_numbers_from_next_seq(store: Storage, exp: ExperimentRecord) -> None:
    first = store.create_trials(exp.id, [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.001}])
    assert [(t.id, t.seq) for t in first] == [("exp1-1", 1), ("exp1-2", 2), ("exp1-3", 3)]
    assert all(t.state is W and t.attempt == 1 and is_utc(t.created_at) for t in first)
    second = store.create_trials(exp.id, [{"lr": 1.0}])
    assert [t.seq for t in second] == [4]
    assert store.create_trials(exp.id, []) == []
    assert store.get_experiment(exp.id).next_seq == 5
    assert [store.get_trial(t.id) for t in first + second] == first + second
    assert store.get_trial("exp1-2").params == {"lr": 0.01}


def test_seqs_keep_growing_across_reopened_storage(storage_url: str, make_experiment) -> None:
    seen: list[int] = []
    for _ in range(3):  # each Storage is a scheduler run (submit, then resume twice)
        store = Storage(storage_url)
        if not store.list_experiments():
            make_experiment(store, "e")
        seen += [t.seq for t in store.create_trials("e", [{}, {}])]
        store.close()
    assert seen == [1, 2, 3, 4, 5, 6]


def test_trials_of_unknown_experiment_raise(store: Storage) -> None:
    for call in (lambda: store.create_trials("nope", [{}]), lambda: store.create_trials("nope", []),
                 lambda: store.trials("nope"), lambda: store.count_trials("nope"),
                 lambda: store.intermediate_values("nope")):
        with pytest.raises(NotFoundError, match="no experiment 'nope'"):
            call()


def test_get_unknown_trial_raises(store: Storage, exp: ExperimentRecord) -> None:
    with pytest.raises(NotFoundError, match="no trial 'exp1-9'"):
        store.get_trial("exp1-9")


def test_trials_filter_by_state_in_seq_order(store: Storage, exp: ExperimentRecord) -> None:
    created = store.create_trials(exp.id, [{"i": i} for i in range(5)])
    for t in (created[3], created[1]):
        assert store.transition(t.id, R, expected=[W])
    assert [t.seq for t in store.trials(exp.id)] == [1, 2, 3, 4, 5]
    assert [t.seq for t in store.trials(exp.id, states=[R])] == [2, 4]
    assert store.trials(exp.id, states=[TrialState.LOST]) == []


def test_count_trials_has_every_state(store: Storage, exp: ExperimentRecord) -> None:
    assert store.count_trials(exp.id) == {state: 0 for state in TrialState}
    a, b, _ = store.create_trials(exp.id, [{}, {}, {}])
    store.transition(a.id, R, expected=[W])
    store.transition(b.id, TrialState.FAILED, expected=[W])
    counts = store.count_trials(exp.id)
    assert set(counts) == set(TrialState)
    assert (counts[W], counts[R], counts[TrialState.FAILED], counts[TrialState.SUCCEEDED]) == (1, 1, 1, 0)


def test_transition_is_compare_and_set(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    started = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    fields = dict(queue="gpu0", host="box1", gpus=[0, 1], pid=4242, started_at=started)
    assert store.transition(trial.id, R, expected=[W], **fields)
    assert not store.transition(trial.id, R, expected=[W], **fields)  # a duplicate delivery changes nothing
    running = store.get_trial(trial.id)
    assert (running.state, running.queue, running.host, running.gpus, running.pid) == (R, "gpu0", "box1",
                                                                                        [0, 1], 4242)
    assert running.started_at == started and running.ended_at is None
    # a late "succeeded" for a trial the user already canceled is refused
    assert store.transition(trial.id, TrialState.USER_CANCELED, expected=[W, R])
    assert not store.transition(trial.id, TrialState.SUCCEEDED, expected=[R], exit_code=0)
    canceled = store.get_trial(trial.id)
    assert canceled.state is TrialState.USER_CANCELED and canceled.exit_code is None
    assert is_utc(canceled.ended_at)


def test_transition_stores_every_field(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    ended = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # stored and read back as UTC
    assert store.transition(trial.id, TrialState.SUCCEEDED, expected=[W], attempt=2, exit_code=0,
                            exit_reason="exited with 0", final_value=0.93, final_data={"acc": 0.93},
                            ended_at=ended)
    done = store.get_trial(trial.id)
    assert (done.attempt, done.exit_code, done.exit_reason, done.final_value, done.final_data) == (
        2, 0, "exited with 0", 0.93, {"acc": 0.93})
    assert done.ended_at == ended and done.ended_at.tzinfo == timezone.utc


def test_unknown_fields_and_trials_are_refused(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    with pytest.raises(TypeError, match="colour"):
        store.transition(trial.id, R, expected=[W], colour="red")
    with pytest.raises(TypeError, match="state"):
        store.update_trial(trial.id, state=R)
    assert store.get_trial(trial.id).state is W
    with pytest.raises(NotFoundError):
        store.transition("exp1-99", R, expected=[W])
    with pytest.raises(NotFoundError):
        store.update_trial("exp1-99", pid=1)


def test_update_trial_keeps_state(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    store.transition(trial.id, R, expected=[W])
    store.update_trial(trial.id, final_value=1.5, final_data=[1, "two"], gpus=None)
    updated = store.get_trial(trial.id)
    assert (updated.state, updated.final_value, updated.final_data) == (R, 1.5, [1, "two"])


# --- metrics and events ---------------------------------------------------------------------------------

def test_duplicate_metric_is_a_no_op(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    assert store.add_metric(trial.id, 1, "intermediate", 1, 0.5, {"default": 0.5, "loss": 2.0})
    assert not store.add_metric(trial.id, 1, "intermediate", 1, 0.9, {"other": True})
    (metric,) = store.metrics(trial.id)
    assert (metric.value, metric.data) == (0.5, {"default": 0.5, "loss": 2.0})
    assert is_utc(metric.created_at)
    # same step of another attempt or kind is a different metric
    assert store.add_metric(trial.id, 2, "intermediate", 1, 0.6)
    assert store.add_metric(trial.id, 1, "final", 1, 0.7)


def test_metrics_ordered_by_attempt_and_step(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    for attempt, step in [(2, 2), (1, 3), (2, 1), (1, 1)]:
        store.add_metric(trial.id, attempt, "intermediate", step, attempt * 10 + step)
    store.add_metric(trial.id, 2, "final", 0, 99.0)
    assert [(m.attempt, m.step) for m in store.metrics(trial.id, kind="intermediate")] == [
        (1, 1), (1, 3), (2, 1), (2, 2)]
    (final,) = store.metrics(trial.id, kind="final")
    assert (final.value, final.data) == (99.0, None)
    assert len(store.metrics(trial.id)) == 5


def test_metric_for_unknown_trial_or_bad_kind_is_refused(store: Storage, exp: ExperimentRecord) -> None:
    with pytest.raises(NotFoundError, match="no trial 'exp1-7'"):
        store.add_metric("exp1-7", 1, "intermediate", 1, 0.5)
    with pytest.raises(NotFoundError):
        store.metrics("exp1-7")
    (trial,) = store.create_trials(exp.id, [{}])
    with pytest.raises(ValueError, match="'best'"):
        store.add_metric(trial.id, 1, "best", 1, 0.5)


def test_intermediate_values_follow_the_current_attempt(store: Storage, exp: ExperimentRecord) -> None:
    a, b, _ = store.create_trials(exp.id, [{}, {}, {}])
    for step, value in [(2, 0.2), (1, 0.1), (3, 0.3)]:
        store.add_metric(a.id, 1, "intermediate", step, value)
    store.add_metric(a.id, 1, "final", 4, 0.4)
    store.add_metric(b.id, 1, "intermediate", 1, 9.0)
    store.transition(b.id, W, expected=[W], attempt=2)  # b is retried: attempt 1's values no longer count
    store.add_metric(b.id, 2, "intermediate", 1, 0.5)
    assert store.intermediate_values(exp.id) == {a.id: [0.1, 0.2, 0.3], b.id: [0.5]}


def test_events_in_order(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    store.add_event(trial.id, 1, "claimed", {"worker": "box1"})
    store.add_event(trial.id, 1, "heartbeat_lost")
    store.add_event(trial.id, 2, "claimed", {"worker": "box2"})
    events = store.events(trial.id)
    assert [(e.attempt, e.kind, e.data) for e in events] == [
        (1, "claimed", {"worker": "box1"}), (1, "heartbeat_lost", {}), (2, "claimed", {"worker": "box2"})]
    assert all(is_utc(e.created_at) for e in events)
    with pytest.raises(NotFoundError):
        store.add_event("exp1-5", 1, "claimed")
    with pytest.raises(NotFoundError):
        store.events("exp1-5")


def test_started_events_of_many_trials_in_one_call(store: Storage, exp: ExperimentRecord) -> None:
    trials = store.create_trials(exp.id, [{}] * 1203)  # past one IN list of 1,000
    for t in trials[::2]:
        store.add_event(t.id, 1, "started", {"machine": f"box{t.seq}"})
    store.add_event(trials[0].id, 2, "started", {"machine": "again"})  # another attempt's start
    store.add_event(trials[1].id, 1, "claimed", {"machine": "no"})  # not a start
    started = store.started_events([(t.id, 1) for t in trials] + [("exp1-99999", 1)])
    assert {tid: e.data["machine"] for tid, e in started.items()} == {t.id: f"box{t.seq}" for t in trials[::2]}
    assert store.started_events([(trials[0].id, 2)])[trials[0].id].data == {"machine": "again"}
    assert store.started_events([]) == {}


def test_records_are_frozen(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    with pytest.raises(AttributeError):
        trial.state = R  # type: ignore[misc]


def test_values_that_cannot_be_stored_are_caller_errors(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    with pytest.raises(ValueError, match="naive datetime"):
        store.update_trial(trial.id, started_at=datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="JSON serializable"):
        store.create_trials(exp.id, [{"f": object()}])
    assert store.get_experiment(exp.id).next_seq == 2  # the failed call took no seq
