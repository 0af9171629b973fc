"""Run an experiment: record it, bring up the broker and local workers, drive the scheduler.

`submit` and `resume` share one path, so a resumed experiment runs exactly like a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from hpoqueue.broker.client import redis_client
from hpoqueue.broker.embedded import ping, resolve_broker_url
from hpoqueue.broker.protocol import Channel
from hpoqueue.broker.task_messages import RedisDispatcher
from hpoqueue.config.experiment_config import ExperimentConfig, config_from_dict
from hpoqueue.errors import BrokerError, StorageUnavailableError, redact
from hpoqueue.experiment.launch import (
    is_embedded,
    own_files,
    start_embedded,
    start_local_workers,
    trial_queues,
    warn_user,
)
from hpoqueue.experiment.lock import broker_lock, scheduler_lock
from hpoqueue.experiment.reconnect import wait_for_storage
from hpoqueue.scheduler import ALIVE_TTL, Progress, Scheduler
from hpoqueue.settings import remember_broker, stored_broker
from hpoqueue.states import ExperimentState
from hpoqueue.storage import Storage
from hpoqueue.tuners import create_tuner
from hpoqueue.worker.code_bundle import pack, ship, ships
from hpoqueue.worker.local import LocalWorkers
from hpoqueue.worker.log_relay import scheduler_token


def create(config: ExperimentConfig, storage: Storage, exp_id: str, broker_url: str | None) -> None:
    """Record experiment `exp_id` of a config that passed launch.check (which gave `broker_url`)."""
    work_dir = config.experiment_working_directory / exp_id
    storage.create_experiment(exp_id, name=config.experiment_name, config=config.to_dict(),
                              work_dir=str(work_dir), optimize_mode=config.optimize_mode,
                              concurrency=config.trial_concurrency, max_trial_number=config.max_trial_number,
                              max_duration=config.max_experiment_duration)
    work_dir.mkdir(parents=True, exist_ok=True)
    if broker_url is not None:
        remember_broker(work_dir, broker_url)


def run(exp_id: str, storage: Storage, *, broker: str | None = None, local_workers: bool | None = None,
        queues: list[str] | None = None, on_progress: Callable[[Progress], None] | None = None,
        stop: bool = False) -> ExperimentState:
    """Drive experiment `exp_id` to its end. Starts (or finds again: on resume, or started early by
    `submit`) the embedded Redis and the local workers when no broker is configured, and stops them at the
    end. `queues`: those the early start chose, else chosen here. `stop`: record what arrived while no
    scheduler ran, then stop the experiment (`hpoqueue stop` after its scheduler was killed), starting no
    worker."""
    exp = storage.get_experiment(exp_id)
    config = config_from_dict(exp.config, source=f"experiment {exp_id}")
    work_dir = Path(exp.work_dir)
    with ExitStack() as stack:
        stack.enter_context(scheduler_lock(work_dir, exp_id))  # first: a refused resume touches nothing
        # `--broker` wins; else the broker this experiment was created (or last run) with
        broker_url = (resolve_broker_url(broker) or stored_broker(work_dir)
                      or resolve_broker_url(None, config.broker))
        embedded = broker_url is None or is_embedded(work_dir, broker_url)
        if broker_url is None or embedded:
            broker_url = start_embedded(work_dir, stack)
        elif ping(broker_url, timeout=3.0):
            remember_broker(work_dir, broker_url)
        else:
            raise BrokerError(f"cannot reach the broker at {redact(broker_url)}")
        client = redis_client(broker_url)
        channel = Channel(client, exp_id)
        stack.enter_context(broker_lock(channel, exp_id, min(ALIVE_TTL, config.heartbeat_timeout)))
        remote = config.training_service.platform == "remote"
        local = local_workers if local_workers is not None else embedded and not remote
        if remote:  # the workers on the machines of machineList, reaching the broker through SSH
            from hpoqueue.remote.experiment import start_remote_workers

            queues = start_remote_workers(config, exp_id, work_dir, broker_url, embedded, stack, up=not stop)
        queues = queues or trial_queues(config, local=local, notify=warn_user)
        if local and stop:  # those still running stop at the end; their trials are stopped first
            stack.callback(LocalWorkers(work_dir / "workers", broker_url).stop)
        elif local:
            start_local_workers(config, work_dir, broker_url, queues, stack)
        if exp.state is not ExperimentState.RUNNING:
            storage.set_experiment_state(exp_id, ExperimentState.RUNNING)
        bundle = None
        if ships(config.ship_code, local=embedded and not remote) and not stop:
            bundle = pack(config.trial_code_directory, source=config.source,
                          leave_out=own_files(storage.url, work_dir))
            ship(bundle, client)
        while True:  # a database that goes away mid-run: wait for it, then go on from storage, as resume does
            scheduler = None
            try:
                scheduler = Scheduler(exp_id=exp_id, config=config, storage=storage, channel=channel,
                                      dispatcher=RedisDispatcher(client), tuner=create_tuner(
                                          config.tuner, config.search_space, optimize_mode=config.optimize_mode,
                                          seed=config.seed, source=config.source),
                                      queues=queues, on_progress=on_progress, code=bundle,
                                      log_token=scheduler_token(work_dir))
                scheduler.stop_requested = stop
                return scheduler.run()
            except StorageUnavailableError as exc:
                stop = stop or bool(scheduler and scheduler.stop_requested)
                wait_for_storage(storage, exp_id, exc)
