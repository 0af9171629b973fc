"""`python -m hpoqueue.remote.agent ACTION`: what `hpoqueue workers up|down|status` and remote experiments
run on a box over SSH. It starts, lists and stops that box's workers with the same code as `hpoqueue
workers start|stop|status`, and answers with one JSON line (errors: one line on stderr, exit status 2)."""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import hpoqueue
from hpoqueue.broker.embedded import ping, redact
from hpoqueue.cli.workers import parse_gpus, worker_specs
from hpoqueue.errors import BrokerError, HpoQueueError
from hpoqueue.gpu import discover_gpus, trial_pids, usable_gpus
from hpoqueue.settings import remote_workers_dir, running_dir, workers_dir
from hpoqueue.worker.local import LocalWorkers, WorkerSpec


def agent_dir(experiment: str | None) -> Path:
    """Standing workers share `hpoqueue workers start`'s directory; an experiment's have their own."""
    if experiment is not None and not re.fullmatch(r"[a-z0-9]+", experiment):
        raise HpoQueueError(f"--experiment {experiment!r} is not an experiment id (lower-case letters and digits)")
    return remote_workers_dir(experiment) if experiment else workers_dir()


def pick_gpus(text: str | None, use_active_gpu: bool) -> tuple[list[int], dict[int, str]]:
    """The GPUs to serve (`--gpus`, else all) less, without useActiveGpu, those busy with others' processes."""
    wanted = parse_gpus(text)
    gpus = discover_gpus()
    _usable, skipped = usable_gpus(gpus, gpu_indices=wanted, use_active_gpu=use_active_gpu,
                                   our_pids=trial_pids(gpus))
    return [i for i in wanted if i not in skipped], {i: why for i, why in skipped.items() if i in wanted}


def report(workers: LocalWorkers, **extra: Any) -> dict[str, Any]:
    """What the box says about itself: version, GPUs, its workers and the trials running there."""
    names = workers.names()
    alive = {n: workers.pid(n) for n in names}
    running = running_dir()
    return {"version": hpoqueue.__version__, "python": sys.executable, "hostname": socket.gethostname(),
            "gpus": [g.index for g in discover_gpus()],
            "workers": {n: pid for n, pid in alive.items() if pid is not None},
            "running_trials": len(list(running.iterdir())) if running.is_dir() else 0, **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpoqueue.remote.agent", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["probe", "up", "down", "status"])
    parser.add_argument("--experiment", help="the experiment whose workers these are (default: standing workers)")
    parser.add_argument("--gpus", help="GPU indices to serve, e.g. 0,1 (default: every GPU of the box)")
    parser.add_argument("--cap", type=int, default=1, help="trials per GPU (maxTrialNumberPerGpu)")
    parser.add_argument("--use-active-gpu", action="store_true", help="also use GPUs busy with other processes")
    parser.add_argument("--cpu", type=int, default=0, help="threads of a `cpu` worker (0: none)")
    parser.add_argument("--assess", action="store_true", help="also start a worker for the assessor")
    args = parser.parse_args(argv)
    try:
        workers = LocalWorkers(agent_dir(args.experiment), "")
        if args.action == "up":
            workers.broker_url = sys.stdin.readline().strip()  # never in argv, where `ps` shows it
            if not workers.broker_url:
                raise HpoQueueError("no broker URL on standard input")
            if not ping(workers.broker_url, timeout=5.0):
                raise BrokerError(f"cannot reach the broker at {redact(workers.broker_url)} from this box "
                                  "(let the box reach it, or leave the broker out of the experiment to use "
                                  "the embedded one through SSH)")
            gpus, skipped = pick_gpus(args.gpus, args.use_active_gpu) if not args.cpu else ([], {})
            specs = worker_specs(gpus, args.cap, args.cpu) if gpus or args.cpu else []
            if not specs:
                raise HpoQueueError(f"no GPU to use: {'; '.join(skipped.values()) or 'none found'} "
                                    "(set useActiveGpu: true, free the GPUs, or pick others in gpuIndices)")
            if args.assess:
                specs.append(WorkerSpec("assess", ("assess",), 1))
            before = {n for n in workers.names() if workers.pid(n)}
            workers.start(specs)
            out = report(workers, started=[s.name for s in specs if s.name not in before],
                         skipped=list(skipped.values()))
        elif args.action == "down":
            stopped = [n for n in workers.names() if workers.pid(n)]
            workers.stop()
            out = report(workers, stopped=stopped)
        else:
            out = report(workers)
    except HpoQueueError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
