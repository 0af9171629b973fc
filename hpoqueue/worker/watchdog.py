"""Restarts the local workers of a run that died (the OOM killer, a stray kill): the scheduler retries
their trials once their heartbeats stop, and a retry needs a live worker on its queue. A restarted worker
also kills what the dead one's trials left running (worker.reap_orphans)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from hpoqueue.worker.local import LocalWorkers, WorkerSpec

CHECK_EVERY = 1.0  #: seconds between two looks at the workers' pids
MAX_RESTARTS = 10  #: restarts of one worker before the watchdog gives up on it (a worker that cannot start)


class WorkerWatchdog:
    """A thread that restarts any of `specs` whose process is gone, saying so through `notify`; a context
    manager, so that it stops before the workers are stopped on purpose."""

    def __init__(self, workers: LocalWorkers, specs: list[WorkerSpec], notify: Callable[[str], None],
                 every: float = CHECK_EVERY) -> None:
        self.workers = workers
        self.specs = specs
        self.notify = notify
        self.every = every
        self._restarts = {spec.name: 0 for spec in specs}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hpoqueue-worker-watchdog", daemon=True)

    def __enter__(self) -> WorkerWatchdog:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopped.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stopped.wait(self.every):
            self.check()

    def check(self) -> None:
        """Restart the workers that died since the last look."""
        for spec in self.specs:
            if self._stopped.is_set() or self._restarts[spec.name] >= MAX_RESTARTS or \
                    self.workers.pid(spec.name) is not None:
                continue
            self._restarts[spec.name] += 1
            if self._restarts[spec.name] == MAX_RESTARTS:
                self.notify(f"local worker {spec.name} died {MAX_RESTARTS} times; not restarting it again "
                            f"(see {self.workers.state_dir / spec.name}.log)")
                continue
            try:
                [pid] = self.workers.start([spec])
            except OSError as exc:
                self.notify(f"local worker {spec.name} died and could not be restarted: {exc}")
                continue
            self.notify(f"local worker {spec.name} died; restarted it (pid {pid}), its trials are retried")
