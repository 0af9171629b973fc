"""An idle scheduler sleeps on one blocking read instead of polling; a CLI command or a trial's end wakes it,
a trial's start does not (it is read at the next wake, before that end): a real Scheduler on a real Redis,
its calls counted by the server (INFO commandstats), with the sweep and the renewal of its word pushed far
off so that any call in an idle spell is polling."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from hpoqueue import scheduler as scheduler_module
from hpoqueue.broker import control, keys
from hpoqueue.broker.client import connect
from hpoqueue.broker.events import Finished, Metric, Started
from hpoqueue.broker.protocol import Channel, TrialSpec
from hpoqueue.config.experiment_config import config_from_dict
from hpoqueue.scheduler import Scheduler
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from hpoqueue.tuners import create_tuner

FAR = 600.0  #: seconds between two sweeps (and renewals) here: an idle scheduler has no reason to call
class Held:
    """A dispatcher whose trials never start: they stay in flight, so the scheduler waits, idle."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.more = threading.Event()

    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        self.sent.append(spec.trial_id)
        self.more.set()

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        for spec, queue in items:
            self.dispatch(spec, queue)


def calls(client: redis.Redis) -> int:
    """How many XREADGROUPs the server has run: each step of the scheduler's loop sends one (the test none)."""
    return int(client.info("commandstats").get("cmdstat_xreadgroup", {}).get("calls", 0))


def blocked(client: redis.Redis) -> None:
    """Wait until a client waits in XREADGROUP (the scheduler's read)."""
    for _ in range(600):
        if any(c["cmd"] == "xreadgroup" and "b" in c["flags"] for c in client.client_list()):
            return
        time.sleep(0.1)
    raise AssertionError("the scheduler never waited on its read")


@pytest.fixture
def made(redis_url: str, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[tuple[Scheduler, Held, Channel]]:
    """A scheduler, not started, whose first trial will never start (concurrency 1)."""
    monkeypatch.setattr(scheduler_module, "HEARTBEAT_SWEEP", FAR)
    monkeypatch.setattr(scheduler_module, "ALIVE_TTL", 3 * FAR)
    config = config_from_dict({"trialCommand": "x", "trialConcurrency": 1, "maxTrialNumber": 3,
                               "heartbeatTimeout": 3 * FAR, "experimentWorkingDirectory": str(tmp_path),
                               "searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}}}, source="test")
    storage = Storage(sqlite_url)
    storage.create_experiment("idle", name=None, config=config.to_dict(), work_dir=str(tmp_path / "idle"),
                              optimize_mode=config.optimize_mode, concurrency=1, max_trial_number=3,
                              max_duration=None)
    channel = Channel(connect(redis_url, socket_timeout=None), "idle")  # its reads wait longer than redis-py's 5 s
    held = Held()
    yield Scheduler(exp_id="idle", config=config, storage=storage, channel=channel, dispatcher=held,
                    tuner=create_tuner(config.tuner, config.search_space, optimize_mode="minimize", seed=1,
                                       source="test"), queues=["cpu"]), held, channel
    storage.close()


@pytest.fixture
def idle(made: tuple[Scheduler, Held, Channel]) -> Iterator[tuple[Scheduler, Held, Channel, list[ExperimentState]]]:
    """The scheduler running in a thread, its first trial in flight."""
    scheduler, held, channel = made
    ended: list[ExperimentState] = []
    thread = threading.Thread(target=lambda: ended.append(scheduler.run()), daemon=True)
    thread.start()
    assert held.more.wait(60)
    yield scheduler, held, channel, ended
    if thread.is_alive():
        channel.send_control(control.Stop())
    thread.join(60)


def test_an_idle_scheduler_sends_nothing_and_a_command_wakes_it(
        idle: tuple[Scheduler, Held, Channel, list[ExperimentState]], redis_url: str) -> None:
    scheduler, held, channel, ended = idle
    server = redis.Redis.from_url(redis_url)
    blocked(server)
    before = calls(server)
    time.sleep(1.5)  # seven polls at the old 0.2 s
    assert calls(server) - before == 0  # asleep on its one blocking read

    held.more.clear()
    channel.send_control(control.Kill(trial=held.sent[0]))  # wakes it: the next trial takes the freed slot
    assert held.more.wait(60), "the kill was not handled: nothing woke the scheduler"
    first = scheduler.storage.get_trial(held.sent[0])
    assert first.state is TrialState.USER_CANCELED and len(held.sent) == 2

    channel.send_control(control.Stop())
    for _ in range(600):
        if ended:
            break
        time.sleep(0.1)
    assert ended == [ExperimentState.STOPPED], "the stop was not handled: nothing woke the scheduler"
    assert [t.state for t in scheduler.storage.trials("idle")] == [TrialState.USER_CANCELED] * 2


def test_the_first_ctrl_c_wakes_an_idle_scheduler(made: tuple[Scheduler, Held, Channel], redis_url: str) -> None:
    """The signal's handler rings the bell: the scheduler stops its trials now, not at its next sweep."""
    scheduler, held, channel = made
    late: list[bool] = []

    def interrupt() -> None:
        assert held.more.wait(60)
        blocked(redis.Redis.from_url(redis_url))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # the scheduler has stopped long before, or it never woke: end it as a command would
        late.append(True)
        channel.send_control(control.Stop())

    threading.Thread(target=interrupt, daemon=True).start()
    assert scheduler.run() is ExperimentState.STOPPED  # the loop runs in the main thread: the handler is its own
    assert not late, "the Ctrl-C did not wake the scheduler"
    assert [t.state for t in scheduler.storage.trials("idle")] == [TrialState.USER_CANCELED]


def test_a_start_leaves_the_scheduler_asleep_and_comes_before_the_end_that_wakes_it(
        idle: tuple[Scheduler, Held, Channel, list[ExperimentState]], redis_url: str) -> None:
    scheduler, held, channel, _ended = idle
    server = redis.Redis.from_url(redis_url)
    trial = held.sent[0]
    blocked(server)
    before = calls(server)
    channel.emit(Started(trial=trial, attempt=1, ts=time.time(), host="w1", pid=4242, gpus=None, queue="cpu",
                         log_dir=None, machine="box"))
    time.sleep(1.0)
    assert calls(server) - before == 0  # the start waits for the next wake
    assert scheduler.storage.get_trial(trial).state is TrialState.WAITING

    held.more.clear()
    channel.emit_many(f"{trial}-a1", [
        Metric(trial=trial, attempt=1, ts=time.time(), kind="final", step=0, value=0.5, data=0.5),
        Finished(trial=trial, attempt=1, ts=time.time(), reason="exited", exit_code=0, signal=None,
                 stop_reason=None, message="exited with 0")])
    assert held.more.wait(60), "the end did not wake the scheduler"
    done = scheduler.storage.get_trial(trial)
    assert (done.state, done.host, done.pid, done.final_value) == (TrialState.SUCCEEDED, "w1", 4242, 0.5)
    assert done.started_at is not None


def test_a_start_goes_with_the_events_to_a_scheduler_that_reads_no_notes(redis_url: str) -> None:
    """A worker beside a scheduler of before the notes (no notes stream): the start must still reach it."""
    channel = Channel(connect(redis_url), "old")
    started = Started(trial="old-1", attempt=1, ts=1.0, host="w", pid=1, gpus=None, queue="cpu", log_dir=None,
                      machine=None)
    channel.emit(started)
    server = redis.Redis.from_url(redis_url)
    assert server.xlen(keys.events("old")) == 1 and not server.exists(keys.notes("old"))
    channel.ensure_group()  # a scheduler that reads notes
    channel.emit(started)
    assert server.xlen(keys.events("old")) == 1 and server.xlen(keys.notes("old")) == 1
    assert [event for _id, event in channel.read_events(0, pending=False)] == [started, started]  # the note first
