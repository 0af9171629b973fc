"""Run the real Scheduler against simulated workers, broker and clock: whole experiments in milliseconds.

Only the broker, the workers and time are simulated; storage, tuners, assessors and the scheduler loop are
the real ones. `SimulatedCluster` is both the scheduler's `Channel` and its `Dispatcher`: an event heap of
(time, seq, action) where each dispatched attempt is a `SimTrial` given by a user function of its params.
Its workers send the events a real worker sends (events.py's classes, through the same JSON), which
tests/e2e/test_events.py holds to what a real worker sent.
Used by the tests (budgets, retries, lost trials, kills, assessors, resume) and benchmarks/assessors.py.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hpoqueue.broker import control, events
from hpoqueue.broker.events import Event, Unreadable
from hpoqueue.broker.protocol import Step, Sweep, TrialSpec
from hpoqueue.config.experiment_config import ExperimentConfig
from hpoqueue.scheduler import Scheduler
from hpoqueue.settings import attempt_dir
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import Storage, TrialRecord
from hpoqueue.tuners import BaseTuner, create_tuner

__all__ = ["SimResult", "SimTrial", "SimulatedCluster", "SimulatedCrash", "Simulation", "SimulationTimeout",
           "simulate"]

_LAST: Any = object()  #: SimTrial.final default: report the last intermediate value as the final one


class SimulatedCrash(Exception):
    """Raised inside the scheduler loop at `SimulatedCluster.crash_at`: the scheduler process 'dies'."""


class SimulationTimeout(RuntimeError):
    """The simulated clock passed `time_limit` without the experiment ending (a scheduler that never ends)."""


@dataclass(frozen=True)
class SimTrial:
    """How one attempt behaves: one intermediate result per `step_time` simulated seconds, then the
    outcome: an exit code, or 'hang' (the worker dies silently: no more events or heartbeats)."""

    values: Sequence[float] = ()
    step_time: float = 1.0
    outcome: int | Literal["hang"] = 0
    final: float | None = _LAST  #: final result reported on exit 0; default: the last value; None: none

    def final_value(self) -> float | None:
        if self.final is _LAST:
            return float(self.values[-1]) if self.values else None
        return self.final


TrialFn = Callable[[dict[str, Any]], SimTrial]


@dataclass
class _Attempt:
    """One attempt as the simulated worker sees it."""

    spec: TrialSpec
    queue: str
    trial: SimTrial | None = None
    started: float | None = None
    died: float | None = None  #: when a 'hang' worker died (heartbeat frozen from then on)
    ended: bool = False
    steps: int = 0


class SimulatedCluster:
    """In-memory broker + workers on a simulated clock, implementing protocol.Channel's scheduler side
    and the scheduler's Dispatcher. Workers are unlimited: the scheduler alone bounds concurrency."""

    def __init__(self, trial_fn: TrialFn, *, exp_id: str, start_delay: float = 0.0, stop_delay: float = 0.0,
                 heartbeat_interval: float = 2.0, wall_start: float | None = None,
                 time_limit: float = 1e6, on_stop: Callable[[str, str], None] | None = None,
                 capacity: dict[str, int] | None = None) -> None:
        self.trial_fn = trial_fn
        self.worker_capacity = dict(capacity or {})  #: what live workers announce per queue ({} = unknown)
        self.exp_id = exp_id
        self.start_delay = start_delay  #: dispatch -> worker starts the command
        self.stop_delay = stop_delay  #: stop request -> process gone and 'finished' sent
        self.heartbeat_interval = heartbeat_interval
        self.wall_start = time.time() if wall_start is None else wall_start
        self.time_limit = time_limit
        self.on_stop = on_stop  #: called with (attempt id, reason) as each stop request arrives
        self.crash_at: float | None = None  #: raise SimulatedCrash from the first ack at or after this time
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._stream: list[tuple[bytes, str]] = []  #: emitted (as JSON, as on the wire), not yet delivered
        self._pending: dict[bytes, Event | Unreadable] = {}  #: delivered, not acknowledged
        self.sent: list[Event] = []  #: every event the simulated workers sent, in order
        self._control: list[tuple[float, str]] = []  #: (time, command as on the wire)
        self._stops: dict[str, list[events.StopReason]] = {}
        self.attempts: dict[str, _Attempt] = {}
        self.dispatched: list[tuple[float, TrialSpec]] = []  #: (time, spec) of every dispatch, in order
        self.stops: list[tuple[float, str, events.StopReason]] = []  #: (time, attempt id, reason) of every stop request
        self.running: set[str] = set()
        self.max_running = 0  #: the most attempts whose command ran at one moment
        self.epochs = 0  #: trial steps run, over all attempts
        self.alive = False

    # ---- the simulated clock ---------------------------------------------------------------------
    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_start + self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` when the simulated clock reaches `when` (now, if earlier)."""
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), action))

    def _run_due(self) -> None:
        while self._heap and self._heap[0][0] <= self.now:
            heapq.heappop(self._heap)[2]()

    def _advance(self, until: float) -> None:
        """Move the clock to `until`, running actions on the way, but stop early once an event is emitted
        or a command is due (its bell)."""
        self._run_due()
        while not self._woken() and self._heap and self._heap[0][0] <= until:
            self.now = self._heap[0][0]
            self._run_due()
        if not self._woken():
            self.now = max(self.now, until)
        if self.now > self.time_limit:
            raise SimulationTimeout(f"simulated time passed {self.time_limit:g} s and the experiment "
                                    "has not ended")

    # ---- what a test or benchmark injects ----------------------------------------------------------
    def control_at(self, when: float, command: control.Command | str) -> None:
        """Send a CLI control command (control.py's classes, through the same JSON as Channel.send_control;
        a str is sent as it is: what no CLI sends) at simulated time `when`."""
        self._control.append((when, command if isinstance(command, str) else control.encode(command)))
        self.at(when, lambda: None)  # the clock stops then: the command's bell ends the scheduler's wait

    def _woken(self) -> bool:
        return bool(self._stream) or any(when <= self.now for when, _command in self._control)

    def emit_at(self, when: float, event_class: type[Event], trial: str, attempt: int, **fields: Any) -> None:
        """Make an event appear at `when`, stamped then (duplicates, late events of old attempts...)."""
        self.at(when, lambda: self._append(events.encode(self._event(event_class, trial, attempt, **fields))))

    def emit_raw_at(self, when: float, raw: str) -> None:
        """Make a stream entry `raw` appear at `when`: anything, as anyone with the broker's address may
        append (not JSON, an unknown type, a field missing...)."""
        self.at(when, lambda: self._append(raw))

    def _event(self, event_class: type[Event], trial: str, attempt: int, **fields: Any) -> Event:
        return event_class(trial=trial, attempt=attempt, ts=self.wall(), **fields)

    def _send(self, event_class: type[Event], spec: TrialSpec, **fields: Any) -> None:
        """What a simulated worker sends about its attempt `spec`."""
        event = self._event(event_class, spec.trial_id, spec.attempt, **fields)
        self.sent.append(event)
        self._append(events.encode(event))

    def _append(self, raw: str) -> None:
        self._stream.append((str(next(self._ids)).encode(), raw))

    # ---- Dispatcher ---------------------------------------------------------------------------------
    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        self.dispatched.append((self.now, spec))
        if spec.attempt_id in self.attempts:
            return  # a second copy of a task: the claim makes it a no-op
        attempt = self.attempts[spec.attempt_id] = _Attempt(spec=spec, queue=queue)
        self.at(self.now + self.start_delay, lambda: self._start(attempt))

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        for spec, queue in items:
            self.dispatch(spec, queue)

    # ---- the simulated worker ------------------------------------------------------------------------
    def _start(self, attempt: _Attempt) -> None:
        spec = attempt.spec
        attempt.started = self.now
        reason = self._take_stop(spec.attempt_id)
        if reason is not None:
            self._end(attempt, "stopped", f"stopped ({reason}) before it started", stop_reason=reason)
            return
        attempt.trial = self.trial_fn(dict(spec.params))
        self.running.add(spec.attempt_id)
        self.max_running = max(self.max_running, len(self.running))
        self._send(events.Started, spec, host="sim", pid=100000 + len(self.attempts),
                   gpus=None if spec.gpu_number is None else (), queue=attempt.queue,
                   log_dir=str(attempt_dir(spec.work_dir, spec.seq, spec.attempt)), machine="sim")
        if spec.timeout is not None:
            self.at(self.now + spec.timeout, lambda: self._time_out(attempt))
        self.at(self.now + attempt.trial.step_time, lambda: self._step(attempt))

    def _step(self, attempt: _Attempt) -> None:
        trial, spec = attempt.trial, attempt.spec
        if attempt.ended or attempt.died is not None or trial is None:
            return
        if attempt.steps < len(trial.values):
            self.epochs += 1
            value = float(trial.values[attempt.steps])
            self._send(events.Metric, spec, kind="intermediate", step=attempt.steps, value=value, data=value)
            attempt.steps += 1
        if attempt.steps < len(trial.values):
            self.at(self.now + trial.step_time, lambda: self._step(attempt))
        elif trial.outcome == "hang":
            attempt.died = self.now
            self.running.discard(spec.attempt_id)
        else:
            final = trial.final_value()
            if trial.outcome == 0 and final is not None:
                self._send(events.Metric, spec, kind="final", step=0, value=final, data=final)
            self._end(attempt, "exited", f"exited with {trial.outcome}", exit_code=trial.outcome)

    def _time_out(self, attempt: _Attempt) -> None:
        if not attempt.ended and attempt.died is None:
            self._end(attempt, "timeout", f"timed out after {float(attempt.spec.timeout or 0)} s "
                      "(maxTrialDuration): SIGTERM", stop_reason="timeout", signal="SIGTERM")

    def _end(self, attempt: _Attempt, reason: events.EndReason, message: str, *, exit_code: int | None = None,
             signal: str | None = None, stop_reason: events.StopReason | None = None) -> None:
        """The attempt is over: its `finished` event, as the worker's Outbox.finish sends it."""
        attempt.ended = True
        self.running.discard(attempt.spec.attempt_id)
        self._send(events.Finished, attempt.spec, reason=reason, message=message, exit_code=exit_code,
                   signal=signal, stop_reason=stop_reason, metrics_rejected=0)

    def _take_stop(self, attempt_id: str) -> events.StopReason | None:
        reasons = self._stops.get(attempt_id)
        return reasons.pop(0) if reasons else None

    # ---- Channel (scheduler side) ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        pass

    def read_events(self, block_ms: int, count: int = 1000, pending: bool = False, ack: Sequence[bytes] = ()
                    ) -> list[tuple[bytes, Event | Unreadable]]:
        """Due events; blocks (advances the clock) up to `block_ms` until one, or a command, is due.
        `pending` re-reads those delivered but not acknowledged (a scheduler restarted after a crash); `ack`
        acknowledges first."""
        self.ack(ack)
        if pending:
            return list(self._pending.items())[:count]
        self._advance(self.now + block_ms / 1000.0)
        return self._take_events(count)

    def read_step(self, block_ms: int, ack: Sequence[bytes] = (), sweep: Sequence[str] | None = None,
                  count: int = 1000) -> Step:
        """As Channel.read_step: a wait of up to `block_ms` for events or a command, then the commands due
        and the sweep's reads (when asked)."""
        self.ack(ack)
        self._advance(self.now + block_ms / 1000.0)
        swept = None if sweep is None else Sweep(self.heartbeats(), self.capacity(list(sweep)))
        return Step(self._take_events(count), self._take_control(), swept)

    def _take_events(self, count: int) -> list[tuple[bytes, Event | Unreadable]]:
        raw, self._stream = self._stream[:count], self._stream[count:]
        batch = [(entry_id, events.decode(text)) for entry_id, text in raw]
        self._pending.update(batch)
        return batch

    def ack(self, ids: Sequence[bytes]) -> None:
        if ids and self.crash_at is not None and self.now >= self.crash_at:
            raise SimulatedCrash(f"scheduler crashed at simulated time {self.now:g} s")
        for i in ids:
            self._pending.pop(i, None)

    def stop(self, attempt_id: str, reason: events.StopReason) -> None:
        self.stops.append((self.now, attempt_id, reason))
        if self.on_stop is not None:
            self.on_stop(attempt_id, reason)
        attempt = self.attempts.get(attempt_id)
        if attempt is None or attempt.started is None:
            self._stops.setdefault(attempt_id, []).append(reason)  # read when a worker takes the task
        elif not attempt.ended and attempt.died is None:
            self.at(self.now + self.stop_delay, lambda: self._stopped(attempt, reason))

    def _stopped(self, attempt: _Attempt, reason: events.StopReason) -> None:
        if not attempt.ended and attempt.died is None:
            self._end(attempt, "stopped", f"stopped ({reason}): SIGTERM", stop_reason=reason, signal="SIGTERM")

    def heartbeats(self) -> dict[str, int]:
        """Running attempts beat every heartbeat_interval; a dead worker's counter stays as it was."""
        beats = {}
        for attempt_id, attempt in self.attempts.items():
            if attempt.started is not None and not attempt.ended:
                until = attempt.died if attempt.died is not None else self.now
                beats[attempt_id] = 1 + int((until - attempt.started) / self.heartbeat_interval)
        return beats

    def capacity(self, queues: list[str]) -> dict[str, int]:
        """What the simulated workers announce ({}: unknown, only concurrency bounds the scheduler)."""
        return {q: self.worker_capacity.get(q, 0) for q in queues} if self.worker_capacity else {}

    def is_claimed(self, attempt_id: str) -> bool:
        attempt = self.attempts.get(attempt_id)
        return attempt is not None and attempt.started is not None

    def claimed(self, attempt_ids: Sequence[str]) -> set[str]:
        return {attempt_id for attempt_id in attempt_ids if self.is_claimed(attempt_id)}

    def mark_alive(self, ttl: float = 15) -> bool:
        self.alive = True
        return True

    def clear_alive(self) -> None:
        self.alive = False

    def _take_control(self) -> list[control.Command | Unreadable]:
        due = [control.decode(command) for when, command in self._control if when <= self.now]
        self._control = [(when, command) for when, command in self._control if when > self.now]
        return due


@dataclass
class SimResult:
    """One simulated experiment: its end state, simulated duration and trial-epochs spent."""

    exp_id: str
    storage: Storage
    state: ExperimentState
    sim_time: float
    trial_epochs: int
    cluster: SimulatedCluster
    scheduler: Scheduler
    trials: list[TrialRecord] = field(default_factory=list)

    def by_state(self, state: TrialState) -> list[TrialRecord]:
        return [t for t in self.trials if t.state is state]


class Simulation:
    """An experiment recorded in real storage, run by real Schedulers on one SimulatedCluster. Build
    several schedulers in a row (after a SimulatedCrash) to test resume."""

    def __init__(self, config: ExperimentConfig, trial_fn: TrialFn, *, storage_url: str = "sqlite://",
                 storage: Storage | None = None, exp_id: str = "sim", seed: int | None = None,
                 queues: list[str] | None = None, **cluster_options: Any) -> None:
        self.config = config
        self.seed = config.seed if seed is None else seed
        self.storage = storage if storage is not None else Storage(storage_url)
        self.exp_id = exp_id
        self.queues = queues or ["cpu"]
        self.current: Scheduler | None = None  #: the scheduler built last
        exp = self.storage.create_experiment(
            exp_id, name=config.experiment_name, config=config.to_dict(),
            work_dir=str(config.experiment_working_directory / exp_id), optimize_mode=config.optimize_mode,
            concurrency=config.trial_concurrency, max_trial_number=config.max_trial_number,
            max_duration=config.max_experiment_duration)
        started = exp.started_at.timestamp() if exp.started_at is not None else None
        self.cluster = SimulatedCluster(trial_fn, exp_id=exp_id, wall_start=started, **cluster_options)

    def tuner(self) -> BaseTuner:
        """A fresh tuner as the config names it (what `hpoqueue submit` and `resume` build)."""
        cfg = self.config
        return create_tuner(cfg.tuner, cfg.search_space, optimize_mode=cfg.optimize_mode, seed=self.seed,
                            source=cfg.source)

    def scheduler(self, tuner: BaseTuner | None = None) -> Scheduler:
        # the simulated cluster stands in for the Redis Channel (same methods, no common type yet)
        self.current = Scheduler(exp_id=self.exp_id, config=self.config, storage=self.storage,
                                 channel=self.cluster,  # type: ignore[arg-type]
                                 dispatcher=self.cluster, tuner=tuner if tuner is not None else self.tuner(),
                                 queues=self.queues, clock=self.cluster.clock, wall=self.cluster.wall)
        return self.current

    def run(self, tuner: BaseTuner | None = None) -> SimResult:
        """Run a (new or resumed) scheduler to the end of the experiment."""
        scheduler = self.scheduler(tuner)
        state = scheduler.run()
        return SimResult(exp_id=self.exp_id, storage=self.storage, state=state, sim_time=self.cluster.now,
                         trial_epochs=self.cluster.epochs, cluster=self.cluster, scheduler=scheduler,
                         trials=self.storage.trials(self.exp_id))


def simulate(config: ExperimentConfig, trial_fn: TrialFn, *, storage_url: str = "sqlite://",
             seed: int | None = None, tuner: BaseTuner | None = None, **cluster_options: Any) -> SimResult:
    """Run `config` to its end with the real scheduler, storage and tuner; trial `params` behave as
    `trial_fn(params)` says. `seed` overrides the config's tuner seed."""
    return Simulation(config, trial_fn, storage_url=storage_url, seed=seed, **cluster_options).run(tuner)
