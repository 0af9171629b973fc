"""Everything a run needs before its scheduler: the checks that can refuse a config, the experiment's id,
the queues trials go to, and the embedded Redis and local workers.

Imports neither SQLAlchemy nor Celery, so `submit` starts a local run's Redis and workers first and they boot
(about 0.4 s) while the scheduler's modules load.
"""

from __future__ import annotations

import logging
import secrets
import socket
import string
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from hpoqueue.broker.embedded import EmbeddedRedis, free_port, ping, resolve_broker_url, shut_down
from hpoqueue.config.experiment_config import ExperimentConfig
from hpoqueue.credentials import warn_if_unprotected
from hpoqueue.errors import BrokerError, ConfigError, GpuError, redact
from hpoqueue.experiment.interrupts import interrupts_deferred
from hpoqueue.gpu import GpuInfo, check_request, discover_gpus, gpu_queue, trial_pids, usable_gpus
from hpoqueue.settings import remember_broker, stored_broker
from hpoqueue.tuners import create_tuner
from hpoqueue.worker.code_bundle import scan, ships
from hpoqueue.worker.local import LocalWorkers, WorkerSpec
from hpoqueue.worker.watchdog import WorkerWatchdog

log = logging.getLogger(__name__)

LOCAL_CPU_THREADS = 32  #: threads of the local `cpu` worker (it only supervises trial processes)


def new_experiment_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def check(config: ExperimentConfig, *, broker: str | None = None, storage_url: str | None = None) -> str | None:
    """Everything that can be checked before anything is written: the broker answers, the GPUs asked for
    exist, the tuner and assessor accept their arguments, the code to ship is within its limits (hpoqueue's
    own files in it not counted; `storage_url`: the database the run will use). Returns the broker URL
    (None: embedded)."""
    broker_url = resolve_broker_url(broker, config.broker)
    if broker_url is not None and not ping(broker_url, timeout=3.0):
        raise BrokerError(f"cannot reach the broker at {redact(broker_url)} (start Redis there, fix --broker "
                          "or HPOQUEUE_BROKER_URL, or leave it unset to use the embedded Redis)")
    if broker_url:
        warn_if_unprotected(broker_url)
    remote = config.training_service.platform == "remote"
    check_gpus(config, local=broker_url is None and not remote)
    if remote:  # each machine answers over SSH with this hpoqueue, before anything is recorded
        from hpoqueue.remote.experiment import check_machines

        check_machines(config)
    else:
        trial_queues(config)
    create_tuner(config.tuner, config.search_space, optimize_mode=config.optimize_mode, seed=config.seed,
                 source=config.source)
    if config.assessor is not None:
        from hpoqueue.assessors import create_assessor

        create_assessor(config.assessor, optimize_mode=config.optimize_mode, source=config.source)
    if ships(config.ship_code, local=broker_url is None and not remote):
        own = own_files(storage_url, config.experiment_working_directory) if storage_url else []
        scan(config.trial_code_directory, source=config.source, leave_out=own)
    check_working_directory(config)  # last: the only check that may create something (an empty directory)
    return broker_url


def own_files(storage_url: str, work_dir: Path) -> list[Path]:
    """What hpoqueue itself writes, never shipped as trial code even inside the code directory: `work_dir` (an
    experiment's directory with its broker password, or the directory of every experiment) and a SQLite
    database with its -wal, -shm and -journal files (see code_bundle.pack for why this process must not even
    open them)."""
    from sqlalchemy.engine import make_url  # only where code is shipped: a local run starts without it

    url = make_url(storage_url)
    files = [work_dir]
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database).expanduser().absolute()
        files += [database, *(database.with_name(database.name + end) for end in ("-wal", "-shm", "-journal"))]
    return files


def check_working_directory(config: ExperimentConfig) -> None:
    """experimentWorkingDirectory exists or can be made: every experiment gets a directory in it."""
    path = config.experiment_working_directory
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}", source=config.source,
                          field="experimentWorkingDirectory", hint="name a directory you can write to, or leave "
                          "it out: $HPOQUEUE_HOME or ~/hpoqueue-experiments") from None


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


def warn_user(message: str) -> None:
    """What a run must tell its user while it goes on (a GPU it cannot use, a worker that died): a warning."""
    log.warning("%s", message)


def start_local_workers(config: ExperimentConfig, work_dir: Path, broker_url: str, queues: list[str],
                        stack: ExitStack, *, grace: float = 20.0, watch: bool = True) -> None:
    """The workers of a run on this box (found again if they still run), stopped by `stack`: SIGTERM, then
    SIGKILL after `grace` seconds. With `watch`, one that dies meanwhile is restarted."""
    workers = LocalWorkers(work_dir / "workers", broker_url)
    specs = local_worker_specs(config, queues)
    stack.callback(workers.stop, grace)  # first: it stops whichever of them have started
    pids = workers.start(specs)
    log.debug("local workers %s (pids %s), logs in %s", ", ".join(s.name for s in specs),
              ", ".join(map(str, pids)), workers.state_dir)
    if watch:  # entered after the callback above, so it stops first
        stack.enter_context(WorkerWatchdog(workers, specs, warn_user))


def local_worker_specs(config: ExperimentConfig, queues: list[str]) -> list[WorkerSpec]:
    """One worker per GPU queue (cap = maxTrialNumberPerGpu), or one `cpu` worker for all trials."""
    if queues == ["cpu"]:
        # the scheduler bounds what runs; spare threads let `hpoqueue update --concurrency` grow live
        specs = [WorkerSpec("cpu", ("cpu",), max(config.trial_concurrency, LOCAL_CPU_THREADS))]
    else:
        cap = config.training_service.max_trial_number_per_gpu
        specs = [WorkerSpec(q, (q,), cap) for q in queues]
    return specs


def is_embedded(work_dir: Path, url: str) -> bool:
    return (work_dir / "broker" / "embedded").exists() and url == stored_broker(work_dir)


def start_embedded(work_dir: Path, stack: ExitStack) -> str:
    """The experiment's own Redis, shut down by `stack`: reused if it still runs (the scheduler crashed, or
    `submit` started it early), else started again on its data directory so that the append-only file
    brings back queued tasks and events."""
    previous = stored_broker(work_dir)
    if previous and (work_dir / "broker" / "embedded").exists() and ping(previous, timeout=0.5):
        stack.callback(shut_down, previous, work_dir / "broker")
        return previous
    return spawn_embedded(work_dir, stack).wait_ready()


def spawn_embedded(work_dir: Path, stack: ExitStack) -> EmbeddedRedis:
    """Start the experiment's Redis (on its former port when free) and record its URL, without waiting
    for it to answer (`wait_ready()`): `submit` starts the workers meanwhile. Shut down by `stack`."""
    data_dir = work_dir / "broker"
    previous = stored_broker(work_dir)
    port = int(previous.rsplit(":", 1)[1].split("/")[0]) if previous else free_port()
    server = EmbeddedRedis(data_dir, port=port if _port_free(port) else None)
    with interrupts_deferred():  # a signal in between would leave the server running
        # redis-py, which stopping the server needs, loaded here: an interrupt in the middle of its first import
        # left it half-imported (NameError inside asyncio), so stopping the server failed and it outlived `submit`
        from hpoqueue.broker import client  # noqa: F401
        url = server.spawn()
        stack.callback(server.stop)
    (data_dir / "embedded").write_text(str(server.port))
    remember_broker(work_dir, url)
    log.debug("embedded Redis on port %d, its files in %s", server.port, data_dir)
    return server


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
