"""`hpoqueue workers start|stop|status`: one background Celery worker per GPU of this box."""

from __future__ import annotations

import argparse

from hpoqueue.broker import ping, redact, resolve_broker_url
from hpoqueue.errors import BrokerError, GpuError
from hpoqueue.experiment import home_dir
from hpoqueue.gpu import discover_gpus, gpu_queue
from hpoqueue.local_workers import LocalWorkers, WorkerSpec
from hpoqueue.tables import table


def parse_gpus(text: str | None) -> list[int]:
    """`--gpus 0,1` (default: every GPU this box has); an index the box lacks is an error."""
    found = [g.index for g in discover_gpus()]
    if text is None:
        return found
    try:
        wanted = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise GpuError(f"--gpus must be comma-separated integers like 0,1, not '{text}'") from exc
    missing = [i for i in wanted if i not in found]
    if missing:
        raise GpuError(f"--gpus names GPU {missing[0]}, but this box has "
                       f"{'GPUs ' + ', '.join(map(str, found)) if found else 'no GPU'}")
    return wanted


def workers_command(args: argparse.Namespace) -> int:
    state_dir = home_dir() / "workers"
    if args.action == "status":
        workers = LocalWorkers(state_dir, "")
        rows = [[name, workers.pid(name) or "-", "running" if workers.pid(name) else "dead"]
                for name in workers.names()]
        print(table(["worker", "pid", "state"], rows) if rows else "no workers started by hpoqueue here")
        return 0
    if args.action == "stop":
        LocalWorkers(state_dir, "").stop()
        print("workers stopped")
        return 0
    url = resolve_broker_url(args.broker)
    if url is None:
        raise BrokerError("no broker: pass --broker redis://host:6379/0 or set HPOQUEUE_BROKER_URL")
    if not ping(url, timeout=3.0):
        raise BrokerError(f"cannot reach the broker at {redact(url)}")
    specs = [WorkerSpec(gpu_queue(i), (gpu_queue(i),), args.cap) for i in parse_gpus(args.gpus)]
    if args.cpu:
        specs.append(WorkerSpec("cpu", ("cpu",), args.cpu))
    if not specs:
        raise GpuError("no GPU found on this box; use --cpu N to run CPU trials")
    pids = LocalWorkers(state_dir, url).start(specs)
    print(table(["worker", "queue", "cap", "pid"],
                [[s.name, ",".join(s.queues), s.concurrency, p] for s, p in zip(specs, pids, strict=True)]))
    return 0
