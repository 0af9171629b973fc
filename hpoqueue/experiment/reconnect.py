"""Waiting out a database that went away mid-run (a restart, a terminated connection): a bounded wait,
then one clear message; the scheduler then starts again from storage, as `resume` would."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from hpoqueue.errors import StorageError, StorageUnavailableError
from hpoqueue.storage import Storage

log = logging.getLogger("hpoqueue.experiment.reconnect")

ENV_STORAGE_WAIT = "HPOQUEUE_STORAGE_WAIT"  #: seconds to wait for a database that went away (default 120)
STORAGE_WAIT = 120.0
STORAGE_RETRY = 1.0  #: seconds between two tries


def storage_wait() -> float:
    """How long to wait for the database: $HPOQUEUE_STORAGE_WAIT seconds, else STORAGE_WAIT."""
    text = os.environ.get(ENV_STORAGE_WAIT)
    try:
        return float(text) if text else STORAGE_WAIT
    except ValueError:
        raise StorageError(f"${ENV_STORAGE_WAIT} must be a number of seconds, not {text!r}") from None


def wait_for_storage(storage: Storage, exp_id: str, error: StorageUnavailableError, *,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """Return once the database answers again; after storage_wait() seconds raise a StorageError saying
    what to do. The trials' events wait in Redis until a scheduler stores them."""
    timeout = storage_wait()
    log.warning("lost the database (%s); waiting up to %g s for it to come back", error, timeout)
    deadline = clock() + timeout
    while True:
        time.sleep(STORAGE_RETRY)
        try:
            storage.get_experiment(exp_id)
        except StorageUnavailableError as exc:
            if clock() >= deadline:
                raise StorageError(f"the database has been unreachable for {timeout:g} s ({exc}); "
                                   f"`hpoqueue resume {exp_id}` continues the experiment once it is back"
                                   ) from None
            continue
        log.warning("the database is back; the scheduler goes on from what it had stored")
        return
