"""One scheduler per experiment: the scheduler holds an flock on its experiment directory's `scheduler.lock`,
which the kernel releases the moment that process ends, crash or not. So `resume` right after a crash goes
ahead, and a second `resume` beside a live scheduler (which would double every trial) is refused.

Across machines that share the broker and storage, it also holds the experiment's key in the broker
(Channel.take_scheduler: SET NX with a TTL its loop renews): a scheduler on another machine is refused
until that key expires, within heartbeatTimeout (at most 15 s) of the holder's death."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hpoqueue.broker.protocol import Channel
from hpoqueue.errors import AlreadyRunningError

LOCK_FILE = "scheduler.lock"


@contextmanager
def scheduler_lock(work_dir: Path, exp_id: str) -> Iterator[None]:
    """Hold experiment `exp_id`'s lock for the block; AlreadyRunningError if its scheduler is alive."""
    fd = _take(work_dir, exp_id)
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def broker_lock(channel: Channel, exp_id: str, ttl: float) -> Iterator[None]:
    """Hold experiment `exp_id`'s key in the broker for the block; AlreadyRunningError if a scheduler on
    any machine holds it."""
    holder = channel.take_scheduler(ttl)
    if holder is not None:
        raise _running(exp_id, holder)
    try:
        yield
    finally:
        channel.clear_alive()


def ensure_no_scheduler(channel: Channel, exp_id: str) -> None:
    """AlreadyRunningError if experiment `exp_id` has a live scheduler on any machine."""
    if channel.scheduler_alive():
        raise _running(exp_id, channel.scheduler_holder() or {})


def _running(exp_id: str, holder: dict[str, Any]) -> AlreadyRunningError:
    return AlreadyRunningError(f"experiment {exp_id} is already running on {holder.get('host')} (scheduler "
                               f"pid {holder.get('pid')}); follow it with `hpoqueue status {exp_id}` or stop it "
                               f"with `hpoqueue stop {exp_id}`")


def ensure_not_running(work_dir: Path, exp_id: str) -> None:
    """AlreadyRunningError if experiment `exp_id` has a live scheduler on this machine."""
    os.close(_take(work_dir, exp_id))


def _take(work_dir: Path, exp_id: str) -> int:
    work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(work_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by what it starts
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunningError(f"experiment {exp_id} is already running (scheduler pid {holder}); follow it "
                                  f"with `hpoqueue status {exp_id}` or stop it with `hpoqueue stop {exp_id}`"
                                  ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
