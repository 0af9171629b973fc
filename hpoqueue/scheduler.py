"""The scheduler loop: the only writer of experiment state.

It keeps at most `concurrency` trials in flight, asks the tuner only when a slot is free (so every
suggestion sees the latest results), binds parameters to a trial row before dispatch, persists every
event from the workers, feeds the tuner and the assessor, finds lost trials by their heartbeats and
retries them, and enforces the trial and time budgets.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hpoqueue.assessors import create_assessor
from hpoqueue.broker import control
from hpoqueue.broker.client import UNREACHABLE, RedisError, ResponseError
from hpoqueue.broker.events import EndReason, Event, Finished, Log, Metric, Started, StopReason, Unreadable, Waiting
from hpoqueue.broker.protocol import Channel, Sweep, TrialSpec, attempt_id
from hpoqueue.config.experiment_config import ExperimentConfig
from hpoqueue.errors import AlreadyRunningError, ConfigError, StorageError, StorageUnavailableError
from hpoqueue.experiment import space_update, warm_start
from hpoqueue.experiment.assessing import Assessing
from hpoqueue.experiment.interrupts import signals_handled
from hpoqueue.experiment.manual_trials import ManualQueue
from hpoqueue.metrics import scalar
from hpoqueue.results import pareto
from hpoqueue.results.optimize_mode import better
from hpoqueue.results.records import Suggestion, TrialResult
from hpoqueue.settings import attempt_dir
from hpoqueue.states import ACTIVE_STATES, ExperimentState, TrialState
from hpoqueue.storage import Storage, TrialRecord
from hpoqueue.tuners._base import BaseTuner
from hpoqueue.worker.code_bundle import Bundle, ship, worker_code_dir
from hpoqueue.worker.gpu_slots import gpu_indices_env
from hpoqueue.worker.log_relay import store

log = logging.getLogger(__name__)

#: how a stop request's reason maps to the state recorded for the trial
STOP_STATES: dict[StopReason, TrialState] = {
    "early_stopped": TrialState.EARLY_STOPPED, "user_canceled": TrialState.USER_CANCELED,
    "timeout": TrialState.TIMEOUT, "lost": TrialState.LOST}
#: the state a trial ends in by its `finished` event's reason (an exit by its code, a stop by STOP_STATES)
END_STATES: dict[EndReason, TrialState] = {
    "timeout": TrialState.TIMEOUT,
    "spawn_failed": TrialState.FAILED,  # the command could not start, or the trial code could not be had
    "error": TrialState.FAILED,  # the worker failed around the trial (its message says how)
}
#: seconds between two reads of the heartbeat hash and the workers' capacity; the longest an idle scheduler
#: sleeps (an event, or a CLI command's bell, wakes it at once): well under the socket timeout of redis-py
#: (5 s by default), which a longer wait would take for a broker gone away
HEARTBEAT_SWEEP = 1.0
ALIVE_TTL = 15.0  #: seconds a scheduler's word lasts (at most heartbeatTimeout); renewed three times as often
BROKER_RETRY = 1.0  #: seconds between two tries to reach a broker that went away
LOAD_PAGE = 1000  #: trials read at a time when a resume rebuilds its state


class Dispatcher(Protocol):
    """Sends work to workers (Celery in production)."""

    def dispatch(self, spec: TrialSpec, queue: str) -> None: ...

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        """Send several at once (one round trip to the broker)."""


class _Refused(Exception):
    """A batch of events the database (or the data) refused, undone to be applied again event by event."""


@dataclass
class Flight:
    """A trial in flight (WAITING or RUNNING), as the scheduler tracks it between events."""

    record: TrialRecord
    attempt: int
    state: TrialState
    queue: str
    intermediate: list[float] = field(default_factory=list)
    final: float | None = None
    final_data: Any = None  #: the final result as reported (its other keys: multi-objective tuners)
    hb_value: int | None = None
    hb_seen: float = 0.0
    claimed: bool = False
    waiting_reason: str | None = None

    @property
    def attempt_id(self) -> str:
        return attempt_id(self.record.id, self.attempt)


@dataclass(frozen=True)
class Progress:
    """What the progress bar and `status` show."""

    created: int
    finished: int
    total: int | None
    running: int
    waiting: int
    failed: int
    best_value: float | None
    best_trial: str | None
    elapsed: float
    state: ExperimentState
    front: int | None = None  #: trials on the Pareto front, for an experiment with objectives


class Scheduler:
    """Runs one experiment to its end (or until stopped), from a fresh start or a resume."""

    def __init__(self, *, exp_id: str, config: ExperimentConfig, storage: Storage, channel: Channel,
                 dispatcher: Dispatcher, tuner: BaseTuner, queues: list[str],
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 on_progress: Callable[[Progress], None] | None = None, code: Bundle | None = None,
                 log_token: str | None = None) -> None:
        self.exp_id = exp_id
        self.config = config
        self.storage = storage
        self.channel = channel
        self.dispatcher = dispatcher
        self.tuner = tuner
        self.queues = queues
        self.clock = clock
        self.wall = wall
        self.on_progress = on_progress
        self.code = code  #: the shipped code version trials run in (None: in place)
        self.log_token = log_token  #: see log_relay.scheduler_token
        exp = storage.get_experiment(exp_id)
        self.concurrency = exp.concurrency
        self.max_trials = exp.max_trial_number
        self.max_duration = exp.max_duration
        self.started_wall = exp.started_at.timestamp() if exp.started_at else wall()
        self.created = exp.next_seq - 1
        self.work_dir = Path(exp.work_dir)
        self.manual = ManualQueue(self.work_dir)  #: configurations enqueued by hand, run before suggestions
        self._by_hand = 0  #: how many of those the last _new_flights recorded, dropped once committed
        self.flights: dict[str, Flight] = {}
        #: finished trials' results, kept only for an assessor (it reads every finished curve); without one,
        #: `update --search-space` reads them from storage when it comes, so memory does not grow with them
        self.history: dict[str, TrialResult] = {}
        self.counts: dict[TrialState, int] = {s: 0 for s in TrialState}
        self.best: tuple[float, str] | None = None
        self.front: list[tuple[str, tuple[float, ...]]] = []  #: the Pareto front (with objectives): trials, losses
        self.stopping = False
        self.stop_requested = False  #: set by the first Ctrl-C or SIGTERM; acted on between two steps
        self.starved = False
        self.capacity: dict[str, int] = {}
        self._warned_idle: list[str] = []
        self._last_sweep = 0.0
        self.alive_ttl = min(ALIVE_TTL, config.heartbeat_timeout)
        self._last_alive = -self.alive_ttl
        self._unacked: list[bytes] = []  #: events persisted, acknowledged with the next read
        self.assessing = None if config.assessor is None else Assessing(create_assessor(
            config.assessor, optimize_mode=config.optimize_mode, source=config.source))
        self.keep_history = self.assessing is not None

    # ---- lifecycle -------------------------------------------------------------------------------
    def run(self) -> ExperimentState:
        """Loop until every trial is finished and no more may start; returns the experiment's end state.

        A first Ctrl-C or SIGTERM stops cleanly (running trials are killed and recorded); a second one
        leaves at once, and `hpoqueue resume` picks the experiment up again.
        """
        self.channel.ensure_group()
        self.refresh_capacity()
        self._load()
        self._persist(self.channel.read_events(0, pending=True))
        while self.stop_requested and (events := self.channel.read_events(1, ack=self._take_unacked())):
            self._persist(events)  # before a stop: record the results that came while no scheduler ran
        with signals_handled(self._on_interrupt, signal.SIGINT, signal.SIGTERM):
            while True:
                try:
                    self._step()
                    if self._done():
                        break
                except UNREACHABLE as exc:
                    self._wait_for_broker(exc)
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self._wait_for_broker(exc)  # Redis came back empty before a read failed
        self.channel.ack(self._take_unacked())
        state = ExperimentState.STOPPED if self.stopping else ExperimentState.DONE
        self.storage.set_experiment_state(self.exp_id, state)
        self.channel.clear_alive()
        self._report(state)
        return state

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        """The first Ctrl-C or SIGTERM asks for a clean stop, acted on between two steps (never in the middle
        of a write); the second leaves at once."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        try:
            self.channel.ring()  # the loop's wait ends now, not at the next sweep
        except RedisError:
            pass  # the broker is away: the loop sees the request once it is back

    def _wait_for_broker(self, exc: Exception) -> None:
        """The broker went away (restart, network): wait until it answers again, re-read the events that
        were delivered but not acknowledged, and give every running attempt a fresh heartbeat window."""
        log.warning("broker unreachable (%s); retrying every %g s", exc, BROKER_RETRY)
        while True:
            time.sleep(BROKER_RETRY)
            try:
                self.channel.client.ping()
                self.channel.ensure_group()
                if self.code is not None:
                    ship(self.code, self.channel.client)  # a Redis back without its data lost the code too
                self._persist(self.channel.read_events(0, pending=True, ack=self._take_unacked()))
                break
            except UNREACHABLE:
                continue
        now = self.clock()
        for flight in self.flights.values():
            flight.hb_seen = now
        # a Redis back without its data lost the messages; a copy is a no-op
        unsure = [f for f in self.flights.values() if not f.claimed and not f.state.is_finished()]
        claimed = self.channel.claimed([f.attempt_id for f in unsure])
        self._dispatch_all([f for f in unsure if f.attempt_id not in claimed])
        log.warning("broker reachable again")

    def request_stop(self) -> None:
        """Stop creating trials and cancel those in flight (recorded USER_CANCELED)."""
        self.stopping = True
        for flight in list(self.flights.values()):
            self._cancel(flight, "user_canceled")

    def _step(self) -> None:
        if self.stop_requested and not self.stopping:
            self.request_stop()
        now = self.clock()
        if now - self._last_alive >= self.alive_ttl / 3:
            if not self.channel.mark_alive(self.alive_ttl):
                raise AlreadyRunningError(f"experiment {self.exp_id} was taken over by another scheduler while "
                                          "this one could not reach the broker; this one stops here")
            self._last_alive = now
        self._fill()
        if self._done():
            return
        # one round trip: a wait for events or a command until the next sweep is due (a sweep due now: the
        # next), then the commands and, when due, the sweep's reads; the commands are applied first (a stop
        # creates no trial for the slots the events free). The word is renewed at the first step a third of
        # its TTL after the last renewal, and no wait lets half of it pass.
        read_at = self.clock()
        due = read_at - self._last_sweep >= HEARTBEAT_SWEEP
        wait = min(HEARTBEAT_SWEEP if due else self._last_sweep + HEARTBEAT_SWEEP - read_at,
                   self._last_alive + self.alive_ttl / 2 - read_at)
        step = self.channel.read_step(max(1, round(wait * 1000)), ack=self._take_unacked(),
                                      sweep=self.queues if due else None)
        woke = self.clock()
        self._handle_control(step.commands)
        self._persist(step.events)
        self._assess()  # what the last batch's budget left
        if step.sweep is not None:
            self.sweep(woke, step.sweep)  # the counters as read when the wait ended
            self._set_capacity(step.sweep.capacity)
            self._last_sweep = read_at
        self._report(ExperimentState.RUNNING)

    # ---- starting trials -------------------------------------------------------------------------
    def out_of_budget(self) -> bool:
        """True once no new trial may be created: trial budget, time budget, exhausted space, stop."""
        if self.stopping or (self.tuner.exhausted and not self.manual.pending()):
            return True
        if self.max_trials is not None and self.created >= self.max_trials:
            return True
        return self.max_duration is not None and self.wall() - self.started_wall >= self.max_duration

    def _done(self) -> bool:
        return not self.flights and (self.out_of_budget() or self.starved)

    def _fill(self) -> None:
        new = self._new_flights()
        self._drop_recorded()
        self._dispatch_all(new)

    def _drop_recorded(self) -> None:
        """Take the configurations enqueued by hand that _new_flights recorded out of the queue, once their
        trials' rows are committed: a scheduler killed before that runs them after `resume`."""
        self.manual.drop(self._by_hand)
        self._by_hand = 0

    def _new_flights(self) -> list[Flight]:
        """Trials for the free slots: suggested, bound to a queue and recorded WAITING, not yet dispatched
        (a message is sent only once its trial row is committed)."""
        self._by_hand = 0  # a count left by a batch that failed before its commit is stale
        free = self.concurrency - len(self.flights)
        if self.capacity:  # workers announced themselves: never queue more than they can start
            load = self._load_per_queue()
            free = min(free, sum(max(0, self.capacity.get(q, 0) - load[q]) for q in self.queues))
        if free <= 0 or self.out_of_budget():
            return []
        if self.max_trials is not None:
            free = min(free, self.max_trials - self.created)
        manual = self.manual.peek(free)  # configurations enqueued by hand go first, dropped once recorded
        self.tuner.set_trials_left(None if self.max_trials is None else self.max_trials - self.created)
        for params in manual:
            self.tuner.mark_pending(params)
        suggestions = [Suggestion(p) for p in manual]
        if free > len(manual):
            suggestions += self.tuner.suggest(free - len(manual))
        # a tuner that has nothing to offer while nothing runs will never have anything: end
        self.starved = not suggestions and not self.flights
        if not suggestions:
            return []
        queues = self._pick_queues(len(suggestions))
        records = self.storage.create_trials(self.exp_id, [s.params for s in suggestions], queues)
        self._by_hand = len(manual)  # still queued: _drop_recorded, after the commit (inside _persist's transaction)
        flights = [Flight(record=r, attempt=1, state=TrialState.WAITING, queue=q)
                   for r, q in zip(records, queues, strict=True)]
        self.flights.update((f.record.id, f) for f in flights)
        self.created += len(records)
        self.counts[TrialState.WAITING] += len(records)
        return flights

    def _load_per_queue(self) -> dict[str, int]:
        load = {q: 0 for q in self.queues}
        for flight in self.flights.values():
            if flight.queue in load:
                load[flight.queue] += 1
        return load

    def _pick_queues(self, count: int) -> list[str]:
        """Queues for `count` new trials, each taking the queue with the most free room then (GPU queues
        for GPU trials, else `cpu`); without announced capacity, the least-loaded one."""
        load = self._load_per_queue()

        def room(q: str) -> int:
            return self.capacity.get(q, 0) - load[q] if self.capacity else -load[q]

        picks = []
        for _ in range(count):
            picks.append(max(self.queues, key=lambda q: (room(q), -self.queues.index(q))))
            load[picks[-1]] += 1
        return picks

    def refresh_capacity(self) -> None:
        """Read which queues live workers consume (the sweep reads it again every HEARTBEAT_SWEEP)."""
        self._set_capacity(self.channel.capacity(self.queues))

    def _set_capacity(self, capacity: dict[str, int]) -> None:
        """What each queue can run at once now; warn once about queues no worker serves."""
        self.capacity = capacity
        idle = [q for q in self.queues if self.capacity and not self.capacity.get(q)]
        if idle and idle != self._warned_idle:
            log.warning("no live worker consumes %s; trials go to the other queues (start one with "
                        "`python -m hpoqueue.worker.main -Q %s`)", ", ".join(idle), idle[0])
        self._warned_idle = idle

    def _spec(self, flight: Flight) -> TrialSpec:
        cfg = self.config
        service = cfg.training_service
        return TrialSpec(
            exp_id=self.exp_id, trial_id=flight.record.id, seq=flight.record.seq, attempt=flight.attempt,
            params=flight.record.params, command=cfg.trial_command,
            code_dir=worker_code_dir(cfg.trial_code_directory, cfg.shared_storage),
            code_hash=self.code.digest if self.code else None,
            log_token=self.log_token,
            work_dir=str(cfg.experiment_working_directory / self.exp_id),
            gpu_number=cfg.trial_gpu_number, gpu_cap=service.max_trial_number_per_gpu,
            use_active_gpu=service.use_active_gpu if service.use_active_gpu is not None else False,
            metric_name=cfg.metric_name, metric_pattern=cfg.metric_pattern,
            timeout=cfg.max_trial_duration, extra_env=gpu_indices_env(service.gpu_indices),
        )

    def _dispatch(self, flight: Flight) -> None:
        self.dispatcher.dispatch(self._spec(flight), flight.queue)

    def _dispatch_all(self, flights: list[Flight]) -> None:
        self.dispatcher.dispatch_many([(self._spec(flight), flight.queue) for flight in flights])

    # ---- events ----------------------------------------------------------------------------------
    def _take_unacked(self) -> list[bytes]:
        ids, self._unacked = self._unacked, []
        return ids

    def _persist(self, batch: list[tuple[bytes, Event | Unreadable]]) -> None:
        """Apply a batch of worker events, and record the trials that take the slots it freed, in one
        transaction; events are acknowledged with the next read (a scheduler killed before that reads
        them again, and applying an event twice changes nothing). What is no event is logged and
        acknowledged as well: it would come back on every resume otherwise."""
        if not batch:
            return
        readable: list[Event] = []
        for _id, event in batch:
            if isinstance(event, Unreadable):
                log.warning("dropped an event that cannot be read (%s): %r", event.why, event.raw[:300])
            else:
                readable.append(event)
        saved = self._save(readable)
        try:
            with self.storage.transaction():
                new = self._apply_batch(readable, isolated=False)
        except _Refused as refused:
            log.info("a batch of %d events was refused (%s); applying them one at a time", len(readable),
                     refused.__cause__)
            self._restore(saved)
            with self.storage.transaction():
                new = self._apply_batch(readable, isolated=True)
        self._drop_recorded()
        self._unacked.extend(i for i, _ in batch)
        self._dispatch_all(new)
        self._assess()

    def _apply_batch(self, batch: list[Event], isolated: bool) -> list[Flight]:
        """Apply the events, tell the tuner of the trials they ended and record the trials that take their
        slots; returns those. Not `isolated`, the events share the transaction, no savepoint each (a third
        of the scheduler's SQL): should the database (or the data) refuse one, _Refused undoes it all and
        _persist applies the batch again `isolated`, one savepoint per event (`_apply`), dropping only the
        events refused."""
        try:
            ended = self._apply_each(batch, isolated)
        except StorageUnavailableError:
            raise  # the database went away: experiment.run waits for it
        except (StorageError, ValueError, TypeError, KeyError) as exc:
            if isolated:
                raise
            raise _Refused from exc
        for flight in ended:
            self._observe(flight)  # before the new suggestions, which must see it
        return [] if self.stop_requested else self._new_flights()

    def _save(self, batch: list[Event]) -> tuple[dict[str, tuple[Flight, Flight]], dict[TrialState, int],
                                                  dict[str, None] | None]:
        """What applying `batch` may change in memory, to undo it (_restore) when the batch is refused."""
        flights = {e.trial: self.flights[e.trial] for e in batch if e.trial in self.flights}
        return ({trial: (f, replace(f, intermediate=list(f.intermediate))) for trial, f in flights.items()},
                dict(self.counts), dict(self.assessing.pending) if self.assessing is not None else None)

    def _restore(self, saved: tuple[dict[str, tuple[Flight, Flight]], dict[TrialState, int],
                                    dict[str, None] | None]) -> None:
        flights, counts, pending = saved
        for flight, before in flights.values():
            vars(flight).update(vars(before))
        self.counts.update(counts)
        if self.assessing is not None and pending is not None:
            self.assessing.pending.clear()
            self.assessing.pending.update(pending)

    def _apply_each(self, batch: list[Event], isolated: bool) -> list[Flight]:
        over: dict[str, Flight] = {}
        for event in batch:
            flight = self.flights.get(event.trial)
            if flight is None or event.attempt != flight.attempt or event.trial in over:
                continue  # a late event of an old attempt or a finished trial: harmless
            if self._apply(flight, event) if isolated else self.HANDLERS[type(event)](self, flight, event):
                over[event.trial] = flight
        return list(over.values())

    def _apply(self, flight: Flight, event: Event) -> bool:
        """Apply one event in a savepoint; True when the trial is over. An event the database refuses (one
        trial's data: a NUL byte, a metric that is not finite) is logged and dropped, never the end of the
        experiment; a `finished` event is then recorded without its details."""
        handler = self.HANDLERS[type(event)]
        try:
            with self.storage.transaction():
                return handler(self, flight, event)
        except StorageUnavailableError:
            raise  # the database went away: experiment.run waits for it
        except (StorageError, ValueError, TypeError, KeyError) as exc:
            log.warning("trial %s: dropped a %s event that could not be stored: %s", flight.record.id,
                        event.TYPE, exc)
            if not isinstance(event, Finished):
                return False
        state = flight.state if flight.state.is_finished() else _end_state(event)
        self.storage.transition(flight.record.id, state, expected=ACTIVE_STATES, exit_code=event.exit_code,
                                exit_reason="its end could not be stored as reported (see the scheduler's log)")
        if not flight.state.is_finished():
            self._count(flight, state)
        return True

    def _on_started(self, flight: Flight, event: Started) -> bool:
        flight.claimed = True
        gpus = None if event.gpus is None else list(event.gpus)
        if self.storage.transition(flight.record.id, TrialState.RUNNING, expected=[TrialState.WAITING],
                                   host=event.host, pid=event.pid, gpus=gpus, queue=event.queue,
                                   started_at=_utc(event.ts)):
            self._count(flight, TrialState.RUNNING)
            flight.waiting_reason = None
        self.storage.add_event(flight.record.id, flight.attempt, "started",
                               {"host": event.host, "pid": event.pid, "gpus": gpus, "queue": event.queue,
                                "log_dir": event.log_dir, "machine": event.machine})
        return False

    def _on_waiting(self, flight: Flight, event: Waiting) -> bool:
        flight.claimed = True
        flight.waiting_reason = event.why
        self.storage.add_event(flight.record.id, flight.attempt, "waiting", {"why": event.why})
        return False

    def _on_log(self, flight: Flight, event: Log) -> bool:
        store(attempt_dir(self.config.experiment_working_directory / self.exp_id, flight.record.seq,
                          flight.attempt), event)
        return False

    def _on_metric(self, flight: Flight, event: Metric) -> bool:
        value = scalar(event.value if event.data is None else event.data)  # again: the broker is not the worker
        if not self.storage.add_metric(flight.record.id, flight.attempt, event.kind, event.step, value,
                                       event.data):
            return False  # seen before (re-read after a crash)
        if event.kind == "loss":
            return False  # report_loss's curve: recorded for display only
        if event.kind == "intermediate":
            flight.intermediate.append(value)
            if self.assessing is not None:
                self.assessing.mark(flight.record.id)
        else:
            flight.final, flight.final_data = value, event.data
            self.storage.update_trial(flight.record.id, final_value=value, final_data=event.data)
        return False

    def _on_finished(self, flight: Flight, event: Finished) -> bool:
        state = _end_state(event)
        if flight.state.is_finished():  # recorded when the stop was decided (early stop, kill)
            state = flight.state
        value = flight.final
        if value is None and flight.intermediate and state in (
                TrialState.SUCCEEDED, TrialState.EARLY_STOPPED, TrialState.TIMEOUT):
            value = flight.intermediate[-1]  # the last intermediate result stands in as the final one
        fields = {"exit_code": event.exit_code, "exit_reason": event.message,
                  "final_value": value, "ended_at": _utc(event.ts)}
        if flight.state.is_finished():
            self.storage.update_trial(flight.record.id, **fields)
        else:
            self.storage.transition(flight.record.id, state, expected=ACTIVE_STATES, **fields)
            self._count(flight, state)
        flight.final = value
        self.storage.add_event(flight.record.id, flight.attempt, "finished",
                               {"reason": event.reason, "exit_code": event.exit_code, "signal": event.signal,
                                "stop_reason": event.stop_reason, "message": event.message,
                                "metrics_rejected": event.metrics_rejected})
        return True

    #: the method that applies each kind of event (tests check that every kind of events.KINDS has one)
    HANDLERS: ClassVar[dict[type[Event], Callable[[Scheduler, Flight, Any], bool]]] = {
        Started: _on_started, Waiting: _on_waiting, Log: _on_log, Metric: _on_metric, Finished: _on_finished}

    def _observe(self, flight: Flight) -> None:
        """The trial is over: tell the tuner once, remember it for assessors and the best value."""
        self.flights.pop(flight.record.id, None)
        result = self._result(flight)
        if self.keep_history:
            self.history[flight.record.id] = result
        self.tuner.observe(result)
        if flight.state is TrialState.SUCCEEDED and flight.final is not None:
            self._consider_best(flight.final, flight.record.id, flight.final_data)

    def _consider_best(self, value: float, trial: str, data: Any) -> None:
        if self.best is None or better(value, self.best[0], self.config.optimize_mode):
            self.best = (value, trial)
        if self.config.objectives:
            self.front = pareto.add_to_front(self.front, trial, self.config.objectives, value, data)

    def _assess(self) -> None:
        """Judge the running trials that got new intermediate results: a STOP is recorded EARLY_STOPPED and
        the trial's process group killed, as `hpoqueue kill` does."""
        if self.assessing is None or not self.assessing.pending:
            return
        in_flight = {trial: self._result(flight) for trial, flight in self.flights.items()}
        stops = self.assessing.decide(in_flight, list(self.history.values()))
        if not stops:
            return
        with self.storage.transaction():
            for trial, step in stops:
                flight = self.flights[trial]
                self.storage.add_event(trial, flight.attempt, "assessor_stop", {"step": step})
                self._cancel(flight, "early_stopped")

    @staticmethod
    def _result(flight: Flight) -> TrialResult:
        return TrialResult(seq=flight.record.seq, params=flight.record.params, state=flight.state,
                           value=flight.final, intermediate=tuple(flight.intermediate), data=flight.final_data)

    # ---- stopping, losing and retrying -----------------------------------------------------------
    def _cancel(self, flight: Flight, reason: StopReason) -> None:
        """Record the end state first, then ask the worker to kill the trial's process group."""
        state = STOP_STATES[reason]
        if self.storage.transition(flight.record.id, state, expected=ACTIVE_STATES,
                                   exit_reason=f"stopped: {reason}"):
            self._count(flight, state)
        self.channel.stop(flight.attempt_id, reason)
        if not flight.claimed and not self.channel.is_claimed(flight.attempt_id):
            self._observe(flight)  # never started: the worker that takes the message drops it

    def sweep(self, now: float, read: Sweep) -> None:
        """Find attempts whose heartbeat stopped for longer than heartbeatTimeout (by the counters `read`
        at `now`); retry or mark LOST."""
        beats = read.heartbeats
        timeout = self.config.heartbeat_timeout
        for flight in list(self.flights.values()):
            value = beats.get(flight.attempt_id)
            if value is not None and value != flight.hb_value:
                flight.hb_value, flight.hb_seen, flight.claimed = value, now, True
            elif flight.hb_value is not None and now - flight.hb_seen > timeout:
                self._lost(flight)

    def _lost(self, flight: Flight) -> None:
        old = flight.attempt_id
        self.channel.stop(old, "lost")  # in case the worker is alive but cut off: it must not go on
        self.storage.add_event(flight.record.id, flight.attempt, "lost",
                               {"heartbeat_timeout": self.config.heartbeat_timeout})
        if flight.state.is_finished():  # stopped (early stop, kill) before its worker vanished: that stands
            self._observe(flight)
            return
        if flight.attempt <= self.config.max_trial_retries and not self.stopping:
            flight.attempt += 1
            self.storage.transition(flight.record.id, TrialState.WAITING, expected=ACTIVE_STATES,
                                    attempt=flight.attempt, host=None, pid=None, started_at=None)
            self._count(flight, TrialState.WAITING)
            flight.hb_value, flight.claimed, flight.intermediate, flight.final = None, False, [], None
            flight.final_data = None
            self._dispatch(flight)
            log.warning("trial %s lost its worker; retrying as attempt %d", flight.record.id, flight.attempt)
            return
        self.storage.transition(flight.record.id, TrialState.LOST, expected=ACTIVE_STATES,
                                exit_reason=f"worker lost (no heartbeat for {self.config.heartbeat_timeout:g} s)")
        self._count(flight, TrialState.LOST)
        self._observe(flight)

    # ---- control from the CLI --------------------------------------------------------------------
    def _handle_control(self, commands: Iterable[control.Command | Unreadable]) -> None:
        """Apply each command through CONTROL; one that cannot be read, or whose content is refused (a search
        space pushed by hand without `hpoqueue update`'s checks), is logged and dropped."""
        for command in commands:
            if isinstance(command, Unreadable):
                log.warning("dropped a control message that cannot be read (%s): %r", command.why, command.raw[:300])
                continue
            try:
                self.CONTROL[type(command)](self, command)
            except ConfigError as exc:
                log.warning("dropped a %s command: %s", command.TYPE, exc)

    def _on_stop(self, command: control.Stop) -> None:
        self.request_stop()

    def _on_kill(self, command: control.Kill) -> None:
        flight = self.flights.get(command.trial)
        if flight is not None:  # else it ended meanwhile
            self._cancel(flight, "user_canceled")

    def _on_search_space(self, command: control.SearchSpace) -> None:
        """Checked by `hpoqueue update --search-space`, and stored by it too."""
        self.config, self.tuner = space_update.retune(self.config, self.tuner, command.space, [
            *self._finished(), *(self._result(f) for f in self.flights.values())])
        self.starved = False

    def _finished(self) -> Iterable[TrialResult]:
        """Every finished trial's result: the kept history, else read from storage a page at a time (a new
        search space is rare; keeping 100,000 results in memory for it is not)."""
        if self.keep_history:
            return self.history.values()
        return (result for record, result in self._stored_results(curves=self.tuner.reads_curves)
                if record.state.is_finished())

    def _on_update(self, command: control.Update) -> None:
        exp = self.storage.update_experiment(self.exp_id, concurrency=command.concurrency,
                                             max_trial_number=command.max_trial_number,
                                             max_duration=command.max_duration)
        self.concurrency, self.max_trials, self.max_duration = (exp.concurrency, exp.max_trial_number,
                                                                exp.max_duration)
        self.starved = False

    #: the method that applies each kind of command (tests check that every kind of control.KINDS has one)
    CONTROL: ClassVar[dict[type[control.Command], Callable[[Scheduler, Any], None]]] = {
        control.Stop: _on_stop, control.Kill: _on_kill, control.Update: _on_update,
        control.SearchSpace: _on_search_space}

    # ---- bookkeeping -----------------------------------------------------------------------------
    def _count(self, flight: Flight, state: TrialState) -> None:
        self.counts[flight.state] -= 1
        self.counts[state] += 1
        flight.state = state

    def _stored_results(self, *, curves: bool) -> Iterator[tuple[TrialRecord, TrialResult]]:
        """Every trial in storage with its result, read a page at a time; with their curves (one query a
        page) when `curves`."""
        for page in self.storage.trial_pages(self.exp_id, LOAD_PAGE):
            values = self.storage.intermediate_values(self.exp_id, seqs=(page[0].seq, page[-1].seq)) if curves \
                else {}
            for record in page:
                yield record, TrialResult(seq=record.seq, params=_shared_strings(record.params), state=record.state,
                                          value=record.final_value, intermediate=tuple(values.get(record.id, ())),
                                          data=record.final_data)

    def _load(self) -> None:
        """Rebuild in-memory state from storage: the tuner, trials in flight, finished curves for an assessor.
        Trials are read a page at a time, and finished curves only when the assessor or the tuner reads them:
        a long experiment's resume then holds the tuner's input, not every row and metric (680 MiB at
        100,000 trials of 20 results once)."""
        results = []
        curves = self.keep_history or self.tuner.reads_curves
        for record, result in self._stored_results(curves=curves):
            self.counts[record.state] += 1
            if record.state in ACTIVE_STATES:
                if not curves:  # a trial in flight goes on with its curve
                    result = replace(result, intermediate=tuple(self.storage.intermediate_values(
                        self.exp_id, seqs=(record.seq, record.seq)).get(record.id, ())))
                flight = Flight(record=record, attempt=record.attempt, state=record.state,
                                queue=record.queue or self._pick_queues(1)[0], intermediate=list(result.intermediate),
                                final=record.final_value, final_data=record.final_data, hb_seen=self.clock())
                self.flights[record.id] = flight
            else:
                if self.keep_history:
                    self.history[record.id] = result
                if record.state is TrialState.SUCCEEDED and record.final_value is not None:
                    self._consider_best(record.final_value, record.id, record.final_data)
            results.append(result)
        claimed = self.channel.claimed([flight.attempt_id for flight in self.flights.values()])  # one round trip
        for flight in self.flights.values():
            flight.claimed = flight.attempt_id in claimed
        if not self.stop_requested:  # their messages may be gone; a second copy is a no-op
            self._dispatch_all([flight for flight in self.flights.values() if not flight.claimed])
        if results:
            self.tuner.rebuild(space_update.fitting(self.tuner, results))
        warm_start.replay(self.tuner, self.work_dir)

    def progress(self, state: ExperimentState) -> Progress:
        finished = sum(n for s, n in self.counts.items() if s.is_finished())
        failed = sum(self.counts[s] for s in (TrialState.FAILED, TrialState.LOST, TrialState.TIMEOUT))
        return Progress(created=self.created, finished=finished, total=self.max_trials,
                        running=self.counts[TrialState.RUNNING], waiting=self.counts[TrialState.WAITING],
                        failed=failed, best_value=self.best[0] if self.best else None,
                        best_trial=self.best[1] if self.best else None,
                        elapsed=self.wall() - self.started_wall, state=state,
                        front=len(self.front) if self.config.objectives else None)

    def _report(self, state: ExperimentState) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress(state))


def _shared_strings(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with its names and string values interned: a resume holds every trial's parameters, and
    JSON gives each its own copy of the same few strings (about 10 MiB at 100,000 trials of four)."""
    return {sys.intern(k): sys.intern(v) if isinstance(v, str) else v for k, v in params.items()}


def _end_state(event: Finished) -> TrialState:
    """The state a `finished` event ends its trial in: an exit by its code, a stop by its reason (a stop that
    names none: the user's), the other reasons by END_STATES."""
    if event.reason == "exited":
        return TrialState.SUCCEEDED if event.exit_code == 0 else TrialState.FAILED
    if event.reason == "stopped":
        return STOP_STATES[event.stop_reason] if event.stop_reason else TrialState.USER_CANCELED
    return END_STATES[event.reason]


def _utc(ts: float) -> Any:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)

