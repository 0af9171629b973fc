"""Every Redis key hpoqueue uses, one function per family: Redis is the protocol between the actors.

=================  ========================  ==========  ====================  ===================  ====================
function           key                       type        written by            read by              expiry
=================  ========================  ==========  ====================  ===================  ====================
events(exp)        hpoqueue:EXP:events       stream      workers               the scheduler        ENDED_TTL after end
heartbeats(exp)    hpoqueue:EXP:heartbeats   hash        workers               the scheduler        ENDED_TTL after end
control(exp)       hpoqueue:EXP:control      list        CLI, dashboard        the scheduler        ENDED_TTL after end
notes(exp)         hpoqueue:EXP:notes        stream      workers               the scheduler        ENDED_TTL after end
bell(exp)          hpoqueue:EXP:bell         stream      CLI, dashboard        the scheduler        ENDED_TTL after end
scheduler(exp)     hpoqueue:EXP:scheduler    string      the scheduler         CLI, scheduler       ALIVE_TTL, renewed
claim(attempt)     hpoqueue:claim:ATTEMPT    string      workers               the scheduler        CLAIM_TTL (30 d)
stop(attempt)      hpoqueue:stop:ATTEMPT     list        scheduler, kill       workers              STOP_TTL (7 d)
code(digest)       hpoqueue:code:SHA256      string      submit, scheduler     workers              CODE_TTL (2 d)
workers()          hpoqueue:workers          hash        workers               scheduler, CLI       none (stale: 20 s)
gpu(host, index)   hpoqueue:gpu:HOST:INDEX   sorted set  workers               workers              none (scores)
queue(name)        NAME (cpu, gpu0, ...)     list        the scheduler         Celery workers       none
=================  ========================  ==========  ====================  ===================  ====================

- events: one JSON event per entry (field `e`, see events.py), appended by Channel.emit_many, read by the
  scheduler's consumer group "scheduler" (Channel.read_events) and deleted once persisted (XACK + XDEL).
- notes: the events that need not end the scheduler's wait (events.Event.WAKES false: started, waiting),
  as in events, read at each of its wakes after the wait; a worker appends there only while the stream
  exists (the scheduler's ensure_group makes it), else to events (a scheduler that does not read notes).
- heartbeats: attempt id -> counter, HINCRBY by the worker (Channel.claim, heartbeat), HDEL with `finished`;
  the scheduler's sweep marks an attempt whose counter stops moving lost.
- control: JSON commands (control.py: stop, kill, update, search_space) from Channel.send_control, taken
  (all at once, atomically) by every read of the scheduler's loop (Channel.read_step).
- bell: one entry per command sent (at most one kept), added by Channel.send_control after the command, read
  by the scheduler's consumer group with the events: it ends the scheduler's blocking read at once, so the
  scheduler need not poll for commands (it sleeps up to a heartbeat sweep when nothing happens).
- scheduler: JSON {host, pid, start} of the experiment's one scheduler (take_scheduler, mark_alive; the lock
  of experiment/lock.py), expiring scheduler.ALIVE_TTL after it was last renewed; Channel.clear_alive
  deletes it and sets ENDED_TTL on the experiment's five keys above (ensure_group removes it on resume).
- claim: SET NX by the worker that runs an attempt (Channel.claim): a second delivery is a no-op.
- stop: reasons (events.STOP_REASONS) pushed by Channel.stop (the scheduler; `hpoqueue kill` when no
  scheduler runs), popped by the worker before the start and after every slice.
- code: a shipped code version (gzipped tar; code_bundle.ship), fetched by code_bundle.checkout; every
  dispatch (task_messages) starts its CODE_TTL again.
- workers: Celery node name -> JSON {host, queues, concurrency, seen}, written every ANNOUNCE_EVERY s by
  capacity.Announcer, read by capacity.live_workers (entries older than STALE_AFTER are ignored).
- gpu: attempt ids -> lease end (Redis server time), per machine and GPU (gpu_lease.GpuLeases: the per-GPU
  cap across the workers of a machine); an expired lease is dropped by the next script that touches the key.
- queue: Celery's Redis transport keeps a queue's task messages in a list named as the queue; the scheduler
  LPUSHes them (task_messages.RedisDispatcher). Celery keeps keys of its own beside (``unacked``,
  ``_kombu.binding.*``); hpoqueue neither reads nor writes those.

EXP is an experiment id, ATTEMPT an attempt id (protocol.attempt_id: EXP-SEQ-aN).
"""

from __future__ import annotations

PREFIX = "hpoqueue"
CLAIM_TTL = 30 * 24 * 3600  #: a claim outlives any trial, so a redelivered message stays a no-op
STOP_TTL = 7 * 24 * 3600
ENDED_TTL = 24 * 3600  #: an ended experiment's stream, heartbeats and control list go a day later
CODE_TTL = 2 * 24 * 3600  #: a shipped code version stays this long after its last dispatch


def events(exp_id: str) -> str:
    """The stream of an experiment's worker events."""
    return f"{PREFIX}:{exp_id}:events"


def heartbeats(exp_id: str) -> str:
    """The hash of heartbeat counters of an experiment's attempts."""
    return f"{PREFIX}:{exp_id}:heartbeats"


def control(exp_id: str) -> str:
    """The list of commands for an experiment's scheduler."""
    return f"{PREFIX}:{exp_id}:control"


def notes(exp_id: str) -> str:
    """The stream of an experiment's worker events that do not wake its scheduler (see events.Event.WAKES)."""
    return f"{PREFIX}:{exp_id}:notes"


def bell(exp_id: str) -> str:
    """The stream whose entries wake an experiment's scheduler for a command (see control)."""
    return f"{PREFIX}:{exp_id}:bell"


def scheduler(exp_id: str) -> str:
    """The string naming the one scheduler of an experiment (its lock across machines)."""
    return f"{PREFIX}:{exp_id}:scheduler"


def claim(attempt: str) -> str:
    """The key whose SET NX claims `attempt` for one worker."""
    return f"{PREFIX}:claim:{attempt}"


def stop(attempt: str) -> str:
    """The list a stop request for `attempt` is pushed to (its reason)."""
    return f"{PREFIX}:stop:{attempt}"


def code(digest: str) -> str:
    """The string holding a shipped code version (gzipped tar) by its SHA-256: see code_bundle."""
    return f"{PREFIX}:code:{digest}"


def workers() -> str:
    """The hash of live workers' announcements (capacity)."""
    return f"{PREFIX}:workers"


def gpu(host: str, index: int) -> str:
    """The sorted set of the leases on GPU `index` of machine `host` (gpu_lease)."""
    return f"{PREFIX}:gpu:{host}:{index}"


def queue(name: str) -> str:
    """The list Celery's Redis transport keeps a queue's task messages in: the queue's own name."""
    return name
