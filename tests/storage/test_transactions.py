"""transaction() grouping and rollback, and seq allocation under concurrent writers, on every backend."""

from __future__ import annotations

import threading

import pytest

from hpoqueue.errors import NotFoundError, StorageError
from hpoqueue.states import TrialState
from hpoqueue.storage import ExperimentRecord, Storage

W, R = TrialState.WAITING, TrialState.RUNNING


class Boom(Exception):
    pass


def test_transaction_rolls_back_everything_on_exception(store: Storage, exp: ExperimentRecord,
                                                        make_experiment) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    with pytest.raises(Boom), store.transaction():
        store.transition(trial.id, R, expected=[W])
        store.add_metric(trial.id, 1, "intermediate", 1, 0.5)
        store.add_event(trial.id, 1, "claimed")
        store.create_trials(exp.id, [{}, {}])
        make_experiment(store, "other")
        raise Boom
    assert store.get_trial(trial.id).state is W
    assert store.metrics(trial.id) == [] and store.events(trial.id) == []
    assert [t.seq for t in store.trials(exp.id)] == [1]
    assert [e.id for e in store.list_experiments()] == [exp.id]


def test_transaction_is_one_commit_seen_by_others_only_at_the_end(storage_url: str, store: Storage,
                                                                  exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    reader = Storage(storage_url)  # the CLI, in another process in real life
    try:
        with store.transaction():
            for step in range(200):  # a scheduler batch of events
                store.add_metric(trial.id, 1, "intermediate", step, float(step))
                store.add_event(trial.id, 1, "metric", {"step": step})
            assert len(store.metrics(trial.id)) == 200  # the writer sees its own uncommitted work
            assert reader.intermediate_values(exp.id) == {}
        assert reader.intermediate_values(exp.id) == {trial.id: [float(s) for s in range(200)]}
        assert len(reader.events(trial.id)) == 200
    finally:
        reader.close()


def test_nested_transaction_undoes_only_its_own_calls(store: Storage, exp: ExperimentRecord) -> None:
    a, b = store.create_trials(exp.id, [{}, {}])
    with store.transaction():
        store.transition(a.id, R, expected=[W])
        with pytest.raises(Boom), store.transaction():
            store.transition(b.id, R, expected=[W])
            raise Boom
        store.add_metric(a.id, 1, "intermediate", 1, 0.5)
    assert (store.get_trial(a.id).state, store.get_trial(b.id).state) == (R, W)
    assert [m.value for m in store.metrics(a.id)] == [0.5]


def test_unknown_trial_inside_a_transaction_does_not_spoil_it(store: Storage, exp: ExperimentRecord) -> None:
    """A stale broker message for a trial storage does not know must not abort the rest of the batch."""
    (trial,) = store.create_trials(exp.id, [{}])
    with store.transaction():
        for call in (lambda: store.add_metric("ghost-1", 1, "intermediate", 1, 0.5),
                     lambda: store.add_event("ghost-1", 1, "claimed"),
                     lambda: store.transition("ghost-1", R, expected=[W])):
            with pytest.raises(NotFoundError):
                call()
        assert store.add_metric(trial.id, 1, "intermediate", 1, 0.5)
        assert not store.add_metric(trial.id, 1, "intermediate", 1, 0.5)
        assert store.transition(trial.id, R, expected=[W])
    assert store.get_trial(trial.id).state is R


def test_concurrent_writers_get_distinct_contiguous_seqs(storage_url: str, store: Storage,
                                                         exp: ExperimentRecord) -> None:
    writers, calls, per_call = 4, 8, 3
    results: list[list[int]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(slot: int) -> None:
        own = Storage(storage_url)  # like two schedulers/processes on one database
        try:
            barrier.wait()
            for _ in range(calls):
                results[slot] += [t.seq for t in own.create_trials(exp.id, [{"w": slot}] * per_call)]
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(s for r in results for s in r)
    assert seqs == list(range(1, writers * calls * per_call + 1))
    assert store.get_experiment(exp.id).next_seq == writers * calls * per_call + 1
    for own in results:  # each create_trials call got a contiguous block, growing within a writer
        assert own == sorted(own)


def test_threads_sharing_a_storage_get_own_transactions(store: Storage, exp: ExperimentRecord) -> None:
    (trial,) = store.create_trials(exp.id, [{}])
    seen: list[int] = []
    with store.transaction():
        store.add_metric(trial.id, 1, "intermediate", 1, 0.5)
        # another thread gets its own short transaction, which cannot see this uncommitted metric
        other = threading.Thread(target=lambda: seen.append(len(store.intermediate_values(exp.id))))
        other.start()
        other.join()
    assert seen == [0]


def test_closed_storage_refuses_calls(storage_url: str) -> None:
    store = Storage(storage_url)
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.list_experiments()
