"""Celery tasks, kept thin: each parses its JSON message and calls a module that imports no Celery."""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from celery.signals import celeryd_after_setup, worker_shutdown

from hpoqueue.broker.app import app

log = logging.getLogger(__name__)


@app.task(name="hpoqueue.run_trial", bind=True, ignore_result=True)
def run_trial(self: Any, spec: dict[str, Any]) -> str:
    """Run one trial attempt on this worker's queue (a GPU slot or `cpu`)."""
    from hpoqueue.worker.attempt import execute_attempt

    queue = (self.request.delivery_info or {}).get("routing_key") or "cpu"
    return execute_attempt(spec, queue=queue, hostname=self.request.hostname or socket.gethostname(),
                           broker_url=app.conf.broker_url)


@celeryd_after_setup.connect
def _check_gpu_queues(sender: str, instance: Any, **_: Any) -> None:
    """Refuse to start a worker whose queue names a GPU this box does not have: one line, exit status 2.

    SystemExit, not an exception: Celery logs and swallows exceptions raised by signal handlers.
    """
    from hpoqueue.errors import GpuError
    from hpoqueue.gpu import discover_gpus, queue_gpu

    gpu_queues = [q for q in instance.app.amqp.queues.consume_from or [] if q.startswith("gpu")]
    if not gpu_queues:
        return  # a `cpu` worker: no NVML to load
    try:
        have = {g.index for g in discover_gpus()}
        for queue in gpu_queues:
            index = queue_gpu(queue)
            if index not in have:
                raise GpuError(f"worker {sender} consumes queue '{queue}' but this box has "
                               f"{'GPUs ' + ', '.join(map(str, sorted(have))) if have else 'no GPU'} "
                               "(start it with -Q gpuN for a GPU it has, or -Q cpu)")
    except GpuError as exc:
        print(f"hpoqueue: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None


_announcers: list[Any] = []


@celeryd_after_setup.connect
def _reap_orphans(sender: str, **_: Any) -> None:
    """Kill what is left of trials whose worker on this box was SIGKILLed (their grandchildren)."""
    from hpoqueue.worker.attempt import reap_orphans

    killed = reap_orphans()
    if killed:
        log.warning("%s killed %d process group(s) left by a dead worker", sender, len(killed))


@celeryd_after_setup.connect
def _announce_capacity(sender: str, instance: Any, **_: Any) -> None:
    """Tell schedulers which queues this worker consumes and how many trials it runs at once."""
    from hpoqueue.broker.capacity import Announcer
    from hpoqueue.broker.client import redis_client

    announcer = Announcer(redis_client(app.conf.broker_url), sender, socket.gethostname(),
                          instance.app.amqp.queues.consume_from or [], int(instance.concurrency or 1))
    announcer.start()
    _announcers.append(announcer)


@worker_shutdown.connect
def _withdraw_capacity(**_: Any) -> None:
    for announcer in _announcers:
        announcer.stop()
