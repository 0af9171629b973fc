"""Run an experiment: validate, record it, bring up the broker and local workers, drive the scheduler.

`submit` and `resume` share one path, so a resumed experiment runs exactly like a fresh one.
"""

from __future__ import annotations

import json
import secrets
import string
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from hpoqueue.broker import EmbeddedRedis, free_port, ping, redact, resolve_broker_url
from hpoqueue.config import ExperimentConfig, config_from_dict
from hpoqueue.errors import BrokerError, ConfigError, GpuError
from hpoqueue.gpu import GpuInfo, check_request, discover_gpus, gpu_queue, trial_pids, usable_gpus
from hpoqueue.local_workers import LocalWorkers, WorkerSpec
from hpoqueue.locations import remember_broker, stored_broker
from hpoqueue.protocol import Channel, TrialSpec
from hpoqueue.scheduler import Progress, Scheduler
from hpoqueue.states import ExperimentState
from hpoqueue.storage import Storage
from hpoqueue.tuners import create_tuner

LOCAL_CPU_THREADS = 32  #: threads of the local `cpu` worker (it only supervises trial processes)


def new_experiment_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def trial_queues(config: ExperimentConfig, *, local: bool = False,
                 notify: Callable[[str], None] | None = None) -> list[str]:
    """The queues trials go to: `cpu` without GPUs, else one per GPU in gpuIndices (or found here).

    On a `local` run (workers on this box) GPUs busy with others' processes are left out while enough
    others remain (useActiveGpu: false); `notify` hears which and why, once.
    """
    if not config.trial_gpu_number:
        return ["cpu"]
    indices = config.training_service.gpu_indices
    gpus = discover_gpus() if indices is None or local else []
    if indices is None:
        indices = tuple(g.index for g in gpus)
    if not indices:
        raise ConfigError("trialGpuNumber is set but no GPU was found on this machine", source=config.source,
                          field="trainingService.gpuIndices",
                          hint="name the GPUs of your workers, e.g. gpuIndices: [0, 1], or set trialGpuNumber: 0")
    if local:
        indices = _idle_indices(config, gpus, indices, notify or (lambda _message: None))
    return [gpu_queue(i) for i in indices]


def _idle_indices(config: ExperimentConfig, gpus: list[GpuInfo], indices: tuple[int, ...],
                  notify: Callable[[str], None]) -> tuple[int, ...]:
    """`indices` less the GPUs busy with processes that are not hpoqueue trials, unless too few would
    remain: then all stay, and the workers make trials wait (saying why) until the GPUs free up."""
    use_active = bool(config.training_service.use_active_gpu)
    _usable, skipped = usable_gpus(gpus, gpu_indices=indices, use_active_gpu=use_active,
                                   our_pids=trial_pids(gpus))
    busy = [why for index, why in sorted(skipped.items()) if index in indices]
    if not busy:
        return indices
    idle = tuple(i for i in indices if i not in skipped)
    assert config.trial_gpu_number is not None  # trial_queues returned "cpu" otherwise
    if len(idle) < config.trial_gpu_number:
        notify(f"{'; '.join(busy)}; trials wait until {config.trial_gpu_number} GPU(s) are free "
               "(useActiveGpu: false)")
        return indices
    notify(f"not using {'; '.join(busy)} (useActiveGpu: false)")
    return idle


def check_gpus(config: ExperimentConfig, local: bool) -> None:
    """A request that no box can satisfy fails at submit, not by waiting forever: against this box's GPUs
    on a local run, else against gpuIndices (the workers' boxes are unknown here)."""
    wanted, indices = config.trial_gpu_number, config.training_service.gpu_indices
    if not wanted:
        return
    if local:
        check_request(wanted, discover_gpus(), indices)
    elif indices is not None and wanted > len(set(indices)):
        raise GpuError(f"trialGpuNumber is {wanted} but gpuIndices allows {len(set(indices))} "
                       f"({', '.join(map(str, indices))}) (lower trialGpuNumber, or list more GPUs in gpuIndices)")


def create(config: ExperimentConfig, storage: Storage, *, broker: str | None = None) -> str:
    """Validate everything that can be checked up front, then record the experiment; returns its id."""
    broker_url = resolve_broker_url(broker, config.broker)
    if broker_url is not None and not ping(broker_url, timeout=3.0):
        raise BrokerError(f"cannot reach the broker at {redact(broker_url)} (start Redis there, fix --broker "
                          "or HPOQUEUE_BROKER_URL, or leave it unset to use the embedded Redis)")
    check_gpus(config, local=broker_url is None)
    trial_queues(config)
    create_tuner(config.tuner, config.search_space, optimize_mode=config.optimize_mode, seed=config.seed,
                 source=config.source)
    if config.assessor is not None:
        from hpoqueue.assessors import create_assessor

        create_assessor(config.assessor, optimize_mode=config.optimize_mode, source=config.source)
    exp_id = new_experiment_id()
    work_dir = config.experiment_working_directory / exp_id
    storage.create_experiment(exp_id, name=config.experiment_name, config=config.to_dict(),
                              work_dir=str(work_dir), optimize_mode=config.optimize_mode,
                              concurrency=config.trial_concurrency, max_trial_number=config.max_trial_number,
                              max_duration=config.max_experiment_duration)
    work_dir.mkdir(parents=True, exist_ok=True)
    if broker_url is not None:
        remember_broker(work_dir, broker_url)
    return exp_id


def run(exp_id: str, storage: Storage, *, broker: str | None = None, local_workers: bool | None = None,
        on_progress: Callable[[Progress], None] | None = None) -> ExperimentState:
    """Drive experiment `exp_id` to its end. Starts (or finds again, on resume) the embedded Redis and
    the local workers when no broker is configured, and stops them at the end."""
    from hpoqueue.worker import redis_client

    exp = storage.get_experiment(exp_id)
    config = config_from_dict(exp.config, source=f"experiment {exp_id}")
    work_dir = Path(exp.work_dir)
    with ExitStack() as stack:
        # `--broker` wins; else the broker this experiment was created (or last run) with
        broker_url = (resolve_broker_url(broker) or stored_broker(work_dir)
                      or resolve_broker_url(None, config.broker))
        embedded = broker_url is None or _is_embedded(work_dir, broker_url)
        if broker_url is None or embedded:
            broker_url = _start_embedded(work_dir, stack)
        elif ping(broker_url, timeout=3.0):
            remember_broker(work_dir, broker_url)
        else:
            raise BrokerError(f"cannot reach the broker at {redact(broker_url)}")
        local = local_workers if local_workers is not None else embedded
        queues = trial_queues(config, local=local, notify=lambda m: print(f"hpoqueue: {m}", file=sys.stderr))
        if local:
            workers = LocalWorkers(work_dir / "workers", broker_url)
            workers.start(_local_worker_specs(config, queues))
            stack.callback(workers.stop)
        from hpoqueue.app import app, broker_settings  # Celery loads while the workers start

        app.conf.update(broker_settings(broker_url))
        if exp.state is not ExperimentState.RUNNING:
            storage.set_experiment_state(exp_id, ExperimentState.RUNNING)
        scheduler = Scheduler(exp_id=exp_id, config=config, storage=storage,
                              channel=Channel(redis_client(broker_url), exp_id),
                              dispatcher=CeleryDispatcher(app), tuner=create_tuner(
                                  config.tuner, config.search_space, optimize_mode=config.optimize_mode,
                                  seed=config.seed, source=config.source),
                              queues=queues, on_progress=on_progress)
        return scheduler.run()


class CeleryDispatcher:
    """Sends trial attempts and assessor work as Celery tasks named after the attempt."""

    def __init__(self, celery_app: Any) -> None:
        self.app = celery_app

    #: keep trying for about two minutes while the broker restarts: the trial row already exists, and a
    #: message never sent would leave it WAITING for ever
    RETRY_POLICY = {"max_retries": 60, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 2.0}

    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        # argsrepr: Flower shows the parameters, and Celery skips its costly saferepr of the whole spec
        self.app.send_task("hpoqueue.run_trial", args=[spec.to_dict()], task_id=spec.attempt_id, queue=queue,
                           retry=True, retry_policy=self.RETRY_POLICY, argsrepr=json.dumps(spec.params)[:1024])

    def assess(self, payload: dict[str, Any]) -> None:
        self.app.send_task("hpoqueue.assess", args=[payload], queue="assess", retry=True,
                           retry_policy=self.RETRY_POLICY)


def _local_worker_specs(config: ExperimentConfig, queues: list[str]) -> list[WorkerSpec]:
    """One worker per GPU queue (cap = maxTrialNumberPerGpu), or one `cpu` worker for all trials."""
    if queues == ["cpu"]:
        # the scheduler bounds what runs; spare threads let `hpoqueue update --concurrency` grow live
        specs = [WorkerSpec("cpu", ("cpu",), max(config.trial_concurrency, LOCAL_CPU_THREADS))]
    else:
        cap = config.training_service.max_trial_number_per_gpu
        specs = [WorkerSpec(q, (q,), cap) for q in queues]
    if config.assessor is not None:
        specs.append(WorkerSpec("assess", ("assess",), 1))
    return specs


def _is_embedded(work_dir: Path, url: str) -> bool:
    return (work_dir / "broker" / "embedded").exists() and url == stored_broker(work_dir)


def _start_embedded(work_dir: Path, stack: ExitStack) -> str:
    """The experiment's own Redis: reuse it if it still runs (the scheduler crashed), else start it
    again on its data directory so the append-only file brings back queued tasks and events."""
    data_dir = work_dir / "broker"
    previous = stored_broker(work_dir)
    if previous and (data_dir / "embedded").exists() and ping(previous, timeout=0.5):
        server = None
        url = previous
    else:
        port = int(previous.rsplit(":", 1)[1].split("/")[0]) if previous else free_port()
        server = EmbeddedRedis(data_dir, port=port if _port_free(port) else None)
        url = server.start()
        (data_dir / "embedded").write_text(str(server.port))
        remember_broker(work_dir, url)

    def shutdown() -> None:
        if server is not None:
            server.stop()
        if ping(url, timeout=0.5):  # reused, or restarted by someone else while we ran: still ours to stop
            import redis

            try:
                redis.Redis.from_url(url).shutdown()
            except redis.RedisError:
                pass

    stack.callback(shutdown)
    return url


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
