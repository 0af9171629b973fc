"""The events between workers and the scheduler (broker/events.py): each kind survives the wire as it was
built, a producer cannot build what the scheduler would refuse, the previous wire format still reads, and
the scheduler has a handler and an end state for everything a worker may send."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import pytest

from hpoqueue.broker import events, keys
from hpoqueue.broker.events import Event, Finished, Log, Metric, Started, Waiting
from hpoqueue.scheduler import END_STATES, STOP_STATES, Scheduler, _end_state
from hpoqueue.states import TrialState

BASE = {"trial": "e-1", "attempt": 2, "ts": 1700000000.5}
ONE_OF_EACH: list[Event] = [
    Started(**BASE, host="node@box", pid=4242, gpus=(0, 1), queue="gpu0", log_dir="/x/attempt-2", machine="box"),
    Waiting(**BASE, why="gpu0: all 1 slot(s) taken"),
    Log(**BASE, stream="stderr", at=65536, data="caf\udcc3 \u2713\n"),  # bytes that were not UTF-8
    Metric(**BASE, kind="final", step=0, value=0.25, data={"default": 0.25, "latency": 3}),
    Finished(**BASE, reason="stopped", exit_code=None, signal="SIGTERM", stop_reason="early_stopped",
             message="stopped (early_stopped): SIGTERM", metrics_rejected=1),
]


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.TYPE)
def test_each_kind_reads_back_as_it_was_sent(event: Event) -> None:
    text = events.encode(event)
    assert json.loads(text)["type"] == event.TYPE and json.loads(text)["v"] == events.VERSION
    assert events.decode(text) == event == events.decode(text.encode())  # as a stream entry's bytes


def test_every_kind_is_in_the_table_and_has_a_handler() -> None:
    assert set(events.KINDS.values()) == {type(e) for e in ONE_OF_EACH} == set(Scheduler.HANDLERS)


def test_a_producer_cannot_build_an_event_the_scheduler_would_refuse() -> None:
    with pytest.raises(events.EventError, match="'signal'"):
        Finished(**BASE, reason="timeout", exit_code=None, signal=15, stop_reason="timeout",
                 message="m")
    with pytest.raises(events.EventError, match="'reason'"):
        Finished(**BASE, reason="crashed", exit_code=None, signal=None, stop_reason=None,
                 message="m")
    with pytest.raises(events.EventError, match="'pid'"):
        Started(**BASE, host="h", pid="12", gpus=None, queue="cpu", log_dir=None, machine=None)
    with pytest.raises(TypeError):
        Waiting(**BASE)


def test_numbers_are_normalized_as_the_scheduler_reads_them() -> None:
    metric = Metric(**BASE, kind="intermediate", step=3, value=1, data=1)
    assert isinstance(metric.value, float) and metric.value == 1.0
    started = events.decode(json.dumps({"type": "started", **BASE, "host": "h", "pid": 1, "gpus": [2], "queue": "gpu2",
                                 "log_dir": None, "machine": None}))
    assert isinstance(started, Started) and started.gpus == (2,)


def test_the_previous_wire_format_still_reads() -> None:
    """What workers sent before versions were written: no "v" (version 1); a field added since has a default."""
    old = {"type": "finished", **BASE, "reason": "error", "exit_code": None, "signal": None, "stop_reason": None,
           "message": "worker error: OSError()", "unknown_later_field": [1]}
    event = events.decode(json.dumps(old))
    assert isinstance(event, Finished) and event.version == 1 and event.metrics_rejected == 0


@pytest.mark.parametrize(("raw", "why"), [
    (b"\xff\xfe", "not JSON"), ('"finished"', "not a JSON object"), ('{"type": 3}', "unknown type 3"),
    (json.dumps({"type": "waiting", **BASE}), "lacks why"),
    (json.dumps({"type": "waiting", **BASE, "why": "x", "v": events.VERSION + 1}),
     f"version {events.VERSION + 1} is newer"),
    (json.dumps({"type": "waiting", **BASE, "why": "x", "v": "1"}), "'version'"),
    (json.dumps({"type": "log", **BASE, "stream": "stdin", "at": 0, "data": ""}), "'stream'"),
    (json.dumps({"type": "started", **BASE, "host": "h", "pid": 1, "gpus": ["0"], "queue": "cpu",
                 "log_dir": None, "machine": None}), "'gpus'"),
])
def test_what_is_no_event_comes_back_unreadable_saying_why(raw: str | bytes, why: str) -> None:
    result = events.decode(raw)
    assert isinstance(result, events.Unreadable) and why in result.why, result


def test_every_end_the_worker_may_report_has_a_state() -> None:
    """The worker's "error" (it failed around the trial) was once no outcome the scheduler knew."""
    for reason in typing.get_args(events.EndReason):
        finished = Finished(**BASE, reason=reason, exit_code=0 if reason == "exited" else None, signal=None,
                            stop_reason="lost" if reason == "stopped" else None, message="m")
        assert isinstance(_end_state(finished), TrialState)
    assert set(END_STATES) | {"exited", "stopped"} == set(typing.get_args(events.EndReason))
    assert set(STOP_STATES) == set(events.STOP_REASONS)


def test_a_stop_reason_read_from_the_broker_is_one_the_worker_knows() -> None:
    assert events.stop_reason(b"early_stopped") == "early_stopped"
    assert events.stop_reason(None) is None and events.stop_reason(b"") is None
    assert events.stop_reason("pushed by hand") == "user_canceled"  # stops, as a user's cancel


def test_every_event_kind_is_in_the_architecture_doc() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    for kind, cls in events.KINDS.items():
        assert f"| `{kind}` | `{cls.__name__}` |" in doc, kind


def test_every_key_family_is_in_the_table_and_in_the_architecture_doc() -> None:
    families = [name for name, fn in inspect.getmembers(keys, inspect.isfunction) if fn.__module__ == keys.__name__]
    doc = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    table = keys.__doc__ or ""
    for name in families:
        assert f"\n{name}(" in table, name
        assert f"`keys.{name}(" in doc, name
    built = [keys.events("x"), keys.notes("x"), keys.heartbeats("x"), keys.control("x"), keys.bell("x"),
             keys.scheduler("x"), keys.claim("x-1-a1"), keys.stop("x-1-a1"), keys.code("ab"), keys.workers(),
             keys.gpu("box", 0)]
    assert len(set(built)) == len(built) and all(k.startswith(keys.PREFIX + ":") for k in built)
