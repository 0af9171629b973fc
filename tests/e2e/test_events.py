"""The events between workers and the scheduler over a real Redis (issue 14 #2): the real scheduler with
the real worker code (execute_attempt, what Celery's task calls, here in a thread per attempt) and real
trial processes. Garbage in the stream is logged and acknowledged, never the end of the experiment; and the
simulated cluster sends exactly the kinds, fields and values the real worker sent in the same experiment."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import redis

from hpoqueue.broker import control, keys
from hpoqueue.broker.client import BrokerClient, redis_client
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.broker.events import Event, Finished, Started, Unreadable
from hpoqueue.broker.protocol import Channel, Step, TrialSpec
from hpoqueue.config.experiment_config import ExperimentConfig, config_from_dict
from hpoqueue.scheduler import Scheduler
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage
from hpoqueue.testing.simulation import SimTrial, Simulation
from hpoqueue.tuners import create_tuner
from hpoqueue.worker.attempt import execute_attempt
from tests.test_scheduler_events import GARBAGE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TRIAL = """
import sys, time
import hpoqueue.trial as nni

mode = nni.get_next_parameter()["mode"]
if mode == "ok":
    nni.report_intermediate_result(0.5)
    nni.report_intermediate_result(0.25)
    nni.report_final_result(0.25)
elif mode == "fail":
    nni.report_intermediate_result(1.0)
    sys.exit(3)
else:  # "slow" runs into maxTrialDuration, "kill" is killed by the user
    time.sleep(120)
"""
MODES = ["ok", "fail", "slow", "kill"]
#: fields whose values are a vocabulary (compared as values); the others are compared by type
VOCABULARY = {"kind", "reason", "stop_reason", "signal", "stream"}


def _config(tmp_path: Path) -> ExperimentConfig:
    return config_from_dict({
        "trialCommand": f"{sys.executable} trial.py", "trialCodeDirectory": str(tmp_path),
        "experimentWorkingDirectory": str(tmp_path / "exps"), "trialConcurrency": len(MODES),
        "maxTrialNumber": len(MODES), "maxTrialDuration": "3s",
        "tuner": {"name": "BatchTuner"},
        "searchSpace": {"combine_params": {"_type": "choice", "_value": [{"mode": m} for m in MODES]}},
    }, source="test")


class Threads:
    """The dispatcher: each attempt runs in a thread as a Celery worker runs it (execute_attempt)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.threads: list[threading.Thread] = []

    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        thread = threading.Thread(target=execute_attempt, args=(spec.to_dict(),),
                                  kwargs={"queue": queue, "hostname": "test", "broker_url": self.url}, daemon=True)
        thread.start()
        self.threads.append(thread)

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        for spec, queue in items:
            self.dispatch(spec, queue)


class Recording(Channel):
    """The scheduler's channel, keeping every event it read; garbage goes in again once trials run, and
    trial `kill` is killed (as `hpoqueue kill` asks) once it started."""

    def __init__(self, client: BrokerClient, exp_id: str, kill: str) -> None:
        super().__init__(client, exp_id)
        self.kill = kill
        self.read: list[Event | Unreadable] = []

    def read_events(self, block_ms: int, count: int = 1000, pending: bool = False, ack: Sequence[bytes] = ()
                    ) -> list[tuple[bytes, Event | Unreadable]]:
        return self._record(super().read_events(block_ms, count, pending, ack))

    def read_step(self, block_ms: int, ack: Sequence[bytes] = (), sweep: Sequence[str] | None = None,
                  count: int = 1000) -> Step:
        step = super().read_step(block_ms, ack, sweep, count)
        self._record(step.events)
        return step

    def _record(self, batch: list[tuple[bytes, Event | Unreadable]]) -> list[tuple[bytes, Event | Unreadable]]:
        for _id, event in batch:
            self.read.append(event)
            if isinstance(event, Started) and event.trial == self.kill:
                self.send_control(control.Kill(trial=self.kill))
                push_garbage(self)
        return batch


def push_garbage(channel: Channel) -> None:
    for _what, raw, _names in GARBAGE:  # they name trial sim-1 attempt 1: here, trial 1 of experiment sim
        pipe = channel.client.pipeline()
        pipe.xadd(channel.events_key, {"e": raw})
        pipe.execute()


def _shapes(events: Sequence[Event]) -> set[tuple[str, tuple[tuple[str, Any], ...]]]:
    """Each event's kind and fields, with the value of a vocabulary field and the type of any other."""
    return {(e.TYPE, tuple((f.name, getattr(e, f.name) if f.name in VOCABULARY else type(getattr(e, f.name)).__name__)
                           for f in fields(e) if f.name not in ("trial", "attempt", "ts")))
            for e in events}


@dataclass
class RealRun:
    """One experiment run by the real scheduler and worker code: its storage, the events the scheduler
    read, and the scheduler's warnings."""

    storage: Storage
    read: list[Event | Unreadable]
    warnings: list[str]
    url: str


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, embedded_redis: EmbeddedRedis) -> Iterator[RealRun]:
    """The experiment of MODES, once for the tests of this module, garbage in its stream."""
    tmp_path = tmp_path_factory.mktemp("events")
    url = embedded_redis.url
    redis.Redis.from_url(url).flushdb()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("HPOQUEUE_RUN_DIR", str(tmp_path / "running"))
        handler, logger = Warnings(), logging.getLogger("hpoqueue.scheduler")
        logger.addHandler(handler)
        try:
            storage, read = _run_real(tmp_path, url)
        finally:
            logger.removeHandler(handler)
        yield RealRun(storage, read, handler.lines, url)


def _run_real(tmp_path: Path, url: str) -> tuple[Storage, list[Event | Unreadable]]:
    (tmp_path / "trial.py").write_text(TRIAL)
    cfg = _config(tmp_path)
    storage = Storage(f"sqlite:///{tmp_path / 'hpoqueue.db'}")
    exp_id = "sim"  # the garbage names trial sim-1
    storage.create_experiment(exp_id, name=None, config=cfg.to_dict(), work_dir=str(tmp_path / "exps" / exp_id),
                              optimize_mode=cfg.optimize_mode, concurrency=cfg.trial_concurrency,
                              max_trial_number=cfg.max_trial_number, max_duration=None)
    channel = Recording(redis_client(url), exp_id, kill=f"{exp_id}-{MODES.index('kill') + 1}")
    push_garbage(channel)  # before the scheduler's first read
    tuner = create_tuner(cfg.tuner, cfg.search_space, optimize_mode=cfg.optimize_mode, seed=1, source="test")
    dispatcher = Threads(url)
    scheduler = Scheduler(exp_id=exp_id, config=cfg, storage=storage, channel=channel, dispatcher=dispatcher,
                          tuner=tuner, queues=["cpu"])
    assert scheduler.run() is ExperimentState.DONE
    for thread in dispatcher.threads:
        thread.join(30)
    return storage, channel.read


def test_garbage_in_the_stream_is_logged_and_the_experiment_ends_as_its_workers_said(real_run: RealRun) -> None:
    states = {t.params["mode"]: (t.state, t.exit_code, t.final_value) for t in real_run.storage.trials("sim")}
    assert states == {"ok": (TrialState.SUCCEEDED, 0, 0.25), "fail": (TrialState.FAILED, 3, None),
                      "slow": (TrialState.TIMEOUT, None, None), "kill": (TrialState.USER_CANCELED, None, None)}
    unreadable = [e for e in real_run.read if isinstance(e, Unreadable)]
    assert len(unreadable) == 2 * len(GARBAGE)
    lines = [line for line in real_run.warnings if "cannot be read" in line]
    assert len(lines) == 2 * len(GARBAGE) and all("\n" not in line for line in lines)
    for what, _raw, names in GARBAGE:
        assert sum(names in line for line in lines) == 2, (what, lines)
    client = redis.Redis.from_url(real_run.url)
    assert client.xlen(keys.events("sim")) == 0  # all acknowledged and deleted


def test_the_simulation_sends_what_the_worker_sends(real_run: RealRun, tmp_path: Path) -> None:
    worker = [e for e in real_run.read if isinstance(e, Event)]

    behaviour = {"ok": SimTrial(values=[0.5, 0.25]), "fail": SimTrial(values=[1.0], outcome=3),
                 "slow": SimTrial(values=[], step_time=120.0), "kill": SimTrial(values=[], step_time=120.0)}
    sim = Simulation(_config(tmp_path), lambda params: behaviour[params["mode"]], exp_id="simulated")
    sim.cluster.control_at(1.0, control.Kill(trial=f"simulated-{MODES.index('kill') + 1}"))
    result = sim.run()
    assert {t.params["mode"]: t.state for t in result.trials} == {
        "ok": TrialState.SUCCEEDED, "fail": TrialState.FAILED, "slow": TrialState.TIMEOUT,
        "kill": TrialState.USER_CANCELED}

    simulated, real = _shapes(sim.cluster.sent), _shapes(worker)
    assert simulated <= real, sorted(simulated - real)
    # the same ways to end, and every kind the simulation models (it relays no logs and leases no GPU)
    assert {s for s in simulated if s[0] == Finished.TYPE} == {s for s in real if s[0] == Finished.TYPE}
    assert {s[0] for s in simulated} == {s[0] for s in real} - {"log"} == {"started", "metric", "finished"}
