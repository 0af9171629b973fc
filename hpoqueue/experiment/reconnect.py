"""Waiting out a database that went away mid-run (a restart, a terminated connection): a bounded wait,
then one clear message; the scheduler then starts again from storage, as `resume` would."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hpoqueue import settings
from hpoqueue.errors import StorageError, StorageUnavailableError
from hpoqueue.storage import Storage

log = logging.getLogger(__name__)

STORAGE_RETRY = 1.0  #: seconds between two tries


def wait_for_storage(storage: Storage, exp_id: str, error: StorageUnavailableError, *,
                     clock: Callable[[], float] = time.monotonic) -> None:
    """Return once the database answers again; after storage_wait() seconds raise a StorageError saying
    what to do. The trials' events wait in Redis until a scheduler stores them."""
    timeout = settings.storage_wait()
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
