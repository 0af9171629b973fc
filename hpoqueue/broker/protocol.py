"""What crosses the broker: the trial spec a task carries, and the Channel through which workers, the CLI and
the scheduler use one experiment's Redis keys (keys.py) and send events (events.py).

Workers talk only to Redis; the scheduler is the only writer of storage. Events go through one Redis
stream per experiment read by a consumer group, so an event is acknowledged only after the scheduler has
persisted it: a scheduler killed mid-batch reads it again on resume.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpoqueue.broker import control, events, keys
from hpoqueue.broker.capacity import alive, live_workers, queue_capacity
from hpoqueue.broker.client import UNREACHABLE, BrokerClient, Entry, Pending, Pipeline, Reply
from hpoqueue.broker.events import Event, Unreadable
from hpoqueue.processes import start_time

GROUP = "scheduler"
NOTE = b"n"  #: the prefix of a notes entry's id as read_events and read_step give it (ack tells them apart)
EMIT_RETRY = 60.0  #: seconds a worker keeps trying to send an event while the broker is down


def attempt_id(trial: str, attempt: int) -> str:
    """The Celery task id of one attempt of a trial: names the experiment, trial and attempt."""
    return f"{trial}-a{attempt}"


def attempt_experiment(attempt: str) -> str:
    """The experiment an attempt id (EXP-SEQ-aN) belongs to."""
    return attempt.rsplit("-", 2)[0]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one attempt; JSON-serializable and fixed before dispatch."""

    exp_id: str
    trial_id: str
    seq: int
    attempt: int
    params: dict[str, Any]
    command: str
    code_dir: str
    work_dir: str
    gpu_number: int | None = None
    gpu_cap: int = 1
    use_active_gpu: bool = True
    metric_name: str = "default"
    metric_pattern: str | None = None
    timeout: float | None = None
    grace: float = 5.0
    heartbeat_interval: float = 2.0
    extra_env: dict[str, str] = field(default_factory=dict)
    code_hash: str | None = None  #: the shipped code version to run in (None: run in code_dir)
    log_token: str | None = None  #: found in work_dir by a worker that sees it: no logs to relay (log_relay)

    @property
    def attempt_id(self) -> str:
        return attempt_id(self.trial_id, self.attempt)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a mapping for the task's JSON message (shallow: it is serialized at once)."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        return cls(**data)


@dataclass(frozen=True)
class Sweep:
    """What the scheduler's heartbeat sweep reads: each attempt's heartbeat counter, and the trials each of
    its queues can run at once over the live workers ({} while no worker announced itself)."""

    heartbeats: dict[str, int]
    capacity: dict[str, int]


@dataclass(frozen=True)
class Step:
    """What one read of the scheduler's loop brought: new events, the commands sent, and the sweep's reads
    when it asked for them."""

    events: list[tuple[bytes, Event | Unreadable]]
    commands: list[control.Command | Unreadable]
    sweep: Sweep | None = None


class Channel:
    """The Redis side of one experiment: events stream, stop lists, claims, heartbeats and control."""

    def __init__(self, client: BrokerClient, exp_id: str) -> None:
        self.client = client
        self.exp_id = exp_id
        self.events_key = keys.events(exp_id)
        self.heartbeats_key = keys.heartbeats(exp_id)
        self.control_key = keys.control(exp_id)
        self.notes_key = keys.notes(exp_id)
        self.bell_key = keys.bell(exp_id)
        self.alive_key = keys.scheduler(exp_id)
        #: the experiment's keys that live while it runs and expire ENDED_TTL after it ends; its streams
        self._kept = (self.events_key, self.notes_key, self.heartbeats_key, self.control_key, self.bell_key)
        self._streams = (self.events_key, self.notes_key, self.bell_key)
        self._rung: list[bytes] = []  #: bell entries read, acknowledged with the next read

    # ---- worker side -------------------------------------------------------------------------
    #: SET NX the claim and, only if that took, count a first heartbeat and take a stop asked for before
    #: the attempt started: one round trip per attempt. Returns false, or {1, stop reason or false}.
    _CLAIM = ("if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end "
              "redis.call('HINCRBY', KEYS[2], ARGV[3], 1) "
              "return {1, redis.call('LPOP', KEYS[3])}")

    def claim(self, attempt: str, holder: str) -> tuple[bool, events.StopReason | None]:
        """Claim an attempt exactly once and start its heartbeat: (False, None) for a second delivery of
        the task, else (True, the reason of a stop already asked for, or None)."""
        reply = self.client.script(self._CLAIM)(keys=[keys.claim(attempt), self.heartbeats_key, keys.stop(attempt)],
                                                args=[holder, keys.CLAIM_TTL, attempt])
        if not isinstance(reply, list):
            return False, None
        taken = reply[1] if len(reply) > 1 else None  # a Lua list ends at its first nil
        return True, events.stop_reason(taken if isinstance(taken, bytes) else None)

    def emit(self, event: Event) -> None:
        """Append one event for the scheduler (see emit_many)."""
        self.emit_many(attempt_id(event.trial, event.attempt), [event])

    def emit_many(self, attempt: str, batch: Sequence[Event], clear_heartbeat: bool = False,
                  take_stop: bool = False, before: Callable[[Pipeline], None] | None = None
                  ) -> events.StopReason | None:
        """Append events of `attempt` in order in one round trip, retrying for up to EMIT_RETRY s while Redis
        restarts (a lost `finished` event would leave the trial RUNNING); a duplicate append is harmless. An
        event that does not wake the scheduler (Event.WAKES) goes to the notes stream while it exists: the
        scheduler reads it after its next wait, with what came meanwhile, so before any later event of the
        attempt. In
        the same round trip, end the attempt's heartbeat when asked, or take a stop request for it
        (`take_stop`), whose reason is returned; `before` queues commands to run first, in the same
        transaction (the attempt's GPU slots given back)."""
        payloads = [events.encode(event) for event in batch]
        deadline = time.monotonic() + EMIT_RETRY
        while True:
            pipe = self.client.pipeline(transaction=True)  # a pipeline forgets its commands once executed
            if before is not None:
                before(pipe)
            for event, payload in zip(batch, payloads, strict=True):
                if event.WAKES:
                    pipe.xadd(self.events_key, {"e": payload})
                else:
                    pipe.eval(self.client.script(self._NOTE), [self.notes_key, self.events_key], [payload])
            if clear_heartbeat:
                pipe.hdel(self.heartbeats_key, attempt)
            taken = pipe.lpop(keys.stop(attempt)) if take_stop else None
            try:
                pipe.execute()
            except UNREACHABLE:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)
                continue
            return events.stop_reason(taken.value) if taken is not None else None

    #: append to the notes stream if it exists (a scheduler that reads it made it), else to the events
    _NOTE = ("local k = KEYS[1] if redis.call('EXISTS', k) == 0 then k = KEYS[2] end "
             "return redis.call('XADD', k, '*', 'e', ARGV[1])")

    def heartbeat(self, attempt: str) -> None:
        self.client.hincrby(self.heartbeats_key, attempt, 1)

    def beat_in(self, pipe: Pipeline, attempt: str) -> Pending[bytes | None]:
        """Queue the attempt's heartbeat and the taking of a stop request for it (the reply) in `pipe`."""
        pipe.hincrby(self.heartbeats_key, attempt, 1)
        return pipe.lpop(keys.stop(attempt))

    def pending_stop(self, attempt: str) -> events.StopReason | None:
        return events.stop_reason(self.client.lpop(keys.stop(attempt)))

    # ---- scheduler side ----------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the scheduler's consumer group (and the stream), and keep the experiment's keys: a
        resumed experiment's keys must not expire (retire) under it."""
        for key in self._kept:
            self.client.persist(key)
        for stream in self._streams:
            self.client.create_group(stream, GROUP)

    def read_events(self, block_ms: int, count: int = 1000, pending: bool = False, ack: Sequence[bytes] = ()
                    ) -> list[tuple[bytes, Event | Unreadable]]:
        """Events not yet acknowledged, the notes first (an entry that is no event comes as Unreadable):
        `pending` re-reads those delivered before a crash. `ack`: events persisted since the last read,
        acknowledged (and deleted) in the same round trip."""
        pipe = self.client.pipeline(transaction=False)
        self._ack(pipe, ack)
        start = "0" if pending else ">"
        read = pipe.read_group(GROUP, "scheduler", {self.notes_key: start, self.events_key: start}, count=count,
                               block_ms=None if pending else block_ms)
        pipe.execute()
        return self._events(read.value)

    def read_step(self, block_ms: int, ack: Sequence[bytes] = (), sweep: Sequence[str] | None = None,
                  count: int = 1000) -> Step:
        """The scheduler loop's one round trip: acknowledge the events persisted (`ack`), wait up to
        `block_ms` (> 0) for new events or a command's bell, then read the notes (all: a start must come
        before the end the wait woke for), take the commands sent and, when `sweep` names the queues, read
        the heartbeats and the live workers (a Sweep). A command rings the bell after
        it is queued, so the read it ends takes it, and an idle scheduler sleeps `block_ms` instead of
        polling. Redis runs what follows the wait once it ends, so every reply comes back at once: one
        wake-up of the scheduler."""
        pipe = self.client.pipeline(transaction=False)
        self._ack(pipe, ack)
        read = pipe.read_group(GROUP, "scheduler", {self.events_key: ">", self.bell_key: ">"}, count=count,
                               block_ms=block_ms)
        notes = pipe.read_group(GROUP, "scheduler", {self.notes_key: ">"}, count=None, block_ms=None)
        taken = self._take_control(pipe)
        if sweep is not None:
            beats, now, announced = pipe.hgetall(self.heartbeats_key), pipe.time(), pipe.hgetall(keys.workers())
        pipe.execute()
        self._rung = [entry_id for entry_id, _fields in read.value.get(self.bell_key, [])]
        swept = None if sweep is None else Sweep(
            _counters(beats.value),
            queue_capacity(alive(announced.value, now.value), sweep))
        return Step(self._events({**notes.value, **read.value}), self._commands(taken.value), swept)

    def _events(self, streams: dict[str, list[Entry]]) -> list[tuple[bytes, Event | Unreadable]]:
        """The entries of the notes, then of the events stream, decoded; a note's id prefixed with NOTE."""
        out: list[tuple[bytes, Event | Unreadable]] = []
        for key, prefix in ((self.notes_key, NOTE), (self.events_key, b"")):
            for entry_id, fields in streams.get(key, []):
                if fields:  # none: deleted after delivery (acknowledged by a scheduler that then died)
                    raw = fields.get(b"e")
                    out.append((prefix + entry_id, events.decode(raw) if raw is not None
                                else Unreadable(repr(fields), "a stream entry without an 'e' field")))
        return out

    def ack(self, ids: Sequence[bytes]) -> None:
        """Acknowledge (and delete) the events persisted, and the bells read."""
        if ids or self._rung:
            pipe = self.client.pipeline(transaction=False)
            self._ack(pipe, ids)
            pipe.execute()

    def _ack(self, pipe: Pipeline, ids: Sequence[bytes]) -> None:
        for key, of_key in ((self.notes_key, [i[len(NOTE):] for i in ids if i.startswith(NOTE)]),
                            (self.events_key, [i for i in ids if not i.startswith(NOTE)])):
            if of_key:
                pipe.xack(key, GROUP, *of_key)
                pipe.xdel(key, *of_key)
        if self._rung:
            pipe.xack(self.bell_key, GROUP, *self._rung)
            self._rung = []

    def stop(self, attempt: str, reason: events.StopReason) -> None:
        """Ask the worker running (or about to run) `attempt` to stop it, with `reason`."""
        key = keys.stop(attempt)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, reason)
        pipe.expire(key, keys.STOP_TTL)
        pipe.execute()

    def heartbeats(self) -> dict[str, int]:
        return _counters(self.client.hgetall(self.heartbeats_key))

    def capacity(self, queues: list[str]) -> dict[str, int]:
        """Trials each queue can run at once over the live workers; {} while no worker announced itself."""
        return queue_capacity(live_workers(self.client), queues)

    def is_claimed(self, attempt: str) -> bool:
        return self.client.exists(keys.claim(attempt))

    def claimed(self, attempts: Sequence[str]) -> set[str]:
        """Which of `attempts` a worker has claimed, in one round trip (a resume asks for every attempt in
        flight)."""
        if not attempts:
            return set()
        pipe = self.client.pipeline(transaction=False)
        replies = [(attempt, pipe.exists(keys.claim(attempt))) for attempt in attempts]
        pipe.execute()
        return {attempt for attempt, reply in replies if reply.value}

    #: the key still (or again) names this scheduler: keep it `ttl` more milliseconds; else leave it
    _RENEW = ("local v = redis.call('GET', KEYS[1]) "
              "if v and v ~= ARGV[1] then return 0 end "
              "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1")
    _SWAP = ("if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
             "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1")
    _RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1"

    @staticmethod
    def _me() -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": start_time(os.getpid())})

    def take_scheduler(self, ttl: float) -> dict[str, Any] | None:
        """Become the experiment's one scheduler, across machines, for `ttl` seconds unless renewed by
        mark_alive: None when taken, else the live holder (host, pid, start). A holder on this machine whose
        process is gone is replaced at once; one on another machine holds until its word expires."""
        me, ms = self._me(), int(ttl * 1000)
        while True:
            if self.client.set(self.alive_key, me, nx=True, px=ms):
                return None
            said = self.client.get(self.alive_key)
            if said is None:
                continue  # expired in between
            if said == me.encode():
                return None
            holder: dict[str, Any] = json.loads(said)
            if self._alive(holder):
                return holder
            if self.client.script(self._SWAP)(keys=[self.alive_key], args=[said, me, ms]):
                return None

    def mark_alive(self, ttl: float = 15) -> bool:
        """Say again that this process schedules the experiment, for `ttl` seconds; False when another
        scheduler holds it (this one's word expired while it could not reach the broker)."""
        return bool(self.client.script(self._RENEW)(keys=[self.alive_key], args=[self._me(), int(ttl * 1000)]))

    def scheduler_alive(self) -> bool:
        """Whether a scheduler said so in the last `ttl` seconds and, when it runs on this machine, still
        exists (same pid and start time, not a zombie): a killed one is seen dead at once, not only once its
        word expires."""
        holder = self.scheduler_holder()
        return holder is not None and self._alive(holder)

    def scheduler_holder(self) -> dict[str, Any] | None:
        """What the experiment's scheduler last said of itself ({host, pid, start}), None when nothing."""
        said = self.client.get(self.alive_key)
        return None if said is None else dict(json.loads(said))

    @staticmethod
    def _alive(holder: dict[str, Any]) -> bool:
        return bool(holder["host"] != socket.gethostname() or start_time(holder["pid"]) == holder["start"])

    def clear_alive(self, ttl: int = keys.ENDED_TTL) -> None:
        """The scheduler has ended the experiment: give it up (if this process holds it), and let the
        experiment's keys expire in `ttl` seconds instead of staying in a shared Redis for ever (claims and
        stop requests expire on their own; ensure_group keeps them again for a resume)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.eval(self.client.script(self._RELEASE), [self.alive_key], [self._me()])
        for key in self._kept:
            pipe.expire(key, ttl)
        pipe.execute()

    # ---- control (CLI -> scheduler) ------------------------------------------------------------
    def send_control(self, command: control.Command) -> None:
        """Queue `command` for the experiment's scheduler and ring its bell (one entry is kept: only a
        ring's coming matters), which ends the scheduler's wait at once (read_step)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(self.control_key, control.encode(command))
        self._ring(pipe)
        pipe.execute()

    def ring(self) -> None:
        """Wake the scheduler without a command (its first Ctrl-C: the loop acts on it), from a signal
        handler: on a connection of its own (BrokerClient.apart), closed at once."""
        client = self.client.apart()
        try:
            pipe = client.pipeline()
            self._ring(pipe)
            pipe.execute()
        finally:
            client.close()

    def _ring(self, pipe: Pipeline) -> None:
        pipe.xadd(self.bell_key, {"b": ""}, maxlen=1)

    #: every command queued, taken at once: LRANGE and DEL, atomically
    _TAKE = "local v = redis.call('LRANGE', KEYS[1], 0, -1) redis.call('DEL', KEYS[1]) return v"

    def _take_control(self, pipe: Pipeline) -> Pending[Reply]:
        return pipe.eval(self.client.script(self._TAKE), [self.control_key], [])

    @staticmethod
    def _commands(taken: Reply) -> list[control.Command | Unreadable]:
        return [control.decode(item) for item in taken if isinstance(item, bytes)] if isinstance(taken, list) else []


def _counters(read: dict[bytes, bytes]) -> dict[str, int]:
    """The heartbeats hash as read: attempt id -> its counter."""
    return {k.decode(): int(v) for k, v in read.items()}
