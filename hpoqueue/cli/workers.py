"""`hpoqueue workers start|stop|status`: one background Celery worker per GPU of this box (queue gpuN,
concurrency = the per-GPU cap), with pid files and logs in $HPOQUEUE_HOME/workers."""

from __future__ import annotations

import argparse

from hpoqueue.broker.embedded import ping, redact, resolve_broker_url
from hpoqueue.cli.tables import table
from hpoqueue.credentials import warn_if_unprotected
from hpoqueue.errors import BrokerError, GpuError, HpoQueueError
from hpoqueue.gpu import discover_gpus, gpu_queue
from hpoqueue.settings import workers_dir
from hpoqueue.worker.local import LocalWorkers, WorkerSpec


def parse_gpus(text: str | None) -> list[int]:
    """`--gpus 0,1` (default: every GPU this box has); an index the box lacks is an error."""
    found = [g.index for g in discover_gpus()]
    if text is None:
        return found
    try:
        wanted = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise GpuError(f"--gpus must be comma-separated GPU indices like 0,1, not '{text}'") from exc
    missing = [i for i in wanted if i not in found]
    if missing:
        have = "GPUs " + ", ".join(map(str, found)) if found else "no GPU"
        raise GpuError(f"--gpus names GPU {missing[0]}, but this box has {have} (pick from those, or set "
                       "HPOQUEUE_FAKE_GPUS=N to test without GPUs)")
    if len(set(wanted)) != len(wanted):
        raise GpuError(f"--gpus repeats a GPU in '{text}' (one worker per GPU)")
    return wanted


def worker_specs(gpus: list[int], cap: int, cpu: int) -> list[WorkerSpec]:
    """One worker per GPU queue running up to `cap` trials, plus a `cpu` worker when `cpu` > 0."""
    if cap < 1:
        raise HpoQueueError(f"--cap is {cap}; it must be at least 1 (trials sharing one GPU)")
    if cpu < 0:
        raise HpoQueueError(f"--cpu is {cpu}; it must be 0 (no cpu worker) or more")
    specs = [WorkerSpec(gpu_queue(i), (gpu_queue(i),), cap) for i in gpus]
    if cpu:
        specs.append(WorkerSpec("cpu", ("cpu",), cpu))
    if not specs:
        raise GpuError("no GPU found on this box (use --cpu N to run CPU trials, or HPOQUEUE_FAKE_GPUS=N to test)")
    return specs


def start(args: argparse.Namespace) -> int:
    specs = worker_specs(parse_gpus(args.gpus), args.cap, args.cpu)
    url = resolve_broker_url(args.broker)
    if url is None:
        raise BrokerError("no broker: pass --broker redis://host:6379/0 or set HPOQUEUE_BROKER_URL")
    if not ping(url, timeout=3.0):
        raise BrokerError(f"cannot reach the broker at {redact(url)} (start Redis there or fix --broker)")
    warn_if_unprotected(url)
    workers = LocalWorkers(workers_dir(), url)
    pids = workers.start(specs)
    print(table(["worker", "queue", "trials at once", "pid", "log"],
                [[s.name, ",".join(s.queues), s.concurrency, p, str(workers.state_dir / f"{s.name}.log")]
                 for s, p in zip(specs, pids, strict=True)]))
    return 0


def status() -> int:
    workers = LocalWorkers(workers_dir(), "")
    rows = []
    for name in workers.names():
        pid = workers.pid(name)
        rows.append([name, pid or "-", "running" if pid else "dead", str(workers.state_dir / f"{name}.log")])
    print(table(["worker", "pid", "state", "log"], rows) if rows else "no workers started by hpoqueue here")
    return 0


def stop() -> int:
    workers = LocalWorkers(workers_dir(), "")
    names = [n for n in workers.names() if workers.pid(n)]
    workers.stop()
    print(f"stopped {', '.join(names)}" if names else "no workers were running")
    return 0


def check_args(args: argparse.Namespace) -> None:
    """`up`/`down` take a hosts file and `start`/`stop` none; each option goes with its kind of action."""
    if args.action in ("up", "down") and not args.hosts:
        raise HpoQueueError(f"`hpoqueue workers {args.action}` needs a hosts file: hpoqueue workers {args.action} "
                            "hosts.yml (see workers/hosts.example.yml)")
    if args.action in ("start", "stop") and args.hosts:
        raise HpoQueueError(f"`hpoqueue workers {args.action}` acts on this box and takes no hosts file "
                            f"(use {'up' if args.action == 'start' else 'down'} for the boxes of {args.hosts})")
    given = [o for o, set_ in (("--gpus", args.gpus is not None), ("--cap", args.cap != 1), ("--cpu", args.cpu != 0),
                               ("--known-hosts", args.known_hosts is not None),
                               ("--accept-new-host-keys", args.accept_new_host_keys), ("--install", args.install))
             if set_]
    wrong = [o for o in given if (o in ("--gpus", "--cap", "--cpu")) == bool(args.hosts)]
    if wrong:
        raise HpoQueueError(f"{wrong[0]} does not go with `hpoqueue workers {args.action}"
                            f"{' HOSTS.yml' if args.hosts else ''}` (--gpus, --cap, --cpu: `workers start` on this "
                            "box; --known-hosts, --accept-new-host-keys, --install: with a hosts file, where "
                            "gpuIndices and maxTrialNumberPerGpu are set per box)")
    if args.install and args.action != "up":
        raise HpoQueueError("--install goes with `hpoqueue workers up HOSTS.yml`")


def workers_command(args: argparse.Namespace) -> int:
    """Dispatch `hpoqueue workers ACTION [HOSTS.yml]`: with a hosts file, on those boxes over SSH."""
    check_args(args)
    if args.hosts:
        from hpoqueue.remote.standing import hosts_command  # paramiko: loaded only when needed

        return hosts_command(args)
    if args.action == "start":
        return start(args)
    return status() if args.action == "status" else stop()
