"""The floor of any Celery design: one bare task per trial that runs the trial's command and pushes its last
loss onto a Redis list (as hpoqueue's results travel on its own stream, not Celery's result backend), on a
resident threads worker with hpoqueue's broker settings (JSON, early ack, no prefetch, no task events) and its
WakeLoop step (without it a threads worker that has been full looks for the next message only at its next
timer, about 0.4 s a trial here). Nothing is recorded, claimed, leased, logged or isolated: overhead.py's row
for it shows what a trial costs on Celery and Redis before anything hpoqueue adds.

    python benchmarks/celery_floor.py BROKER_URL CONCURRENCY   # the worker (overhead.py starts it)
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import redis
from celery import Celery

from hpoqueue.broker.app import WakeLoop

QUEUE = "celery-floor"
RESULTS = "celery-floor:results"
TASK = "celery_floor.run_trial"


@cache
def make_app(url: str) -> Celery:
    """The app of both sides; the worker's alone defines the task (the client sends it by name)."""
    app = Celery("celery_floor", broker=url)
    app.conf.update(task_ignore_result=True, task_serializer="json", result_serializer="json",
                    accept_content=["json"], result_accept_content=["json"], task_acks_late=False,
                    worker_prefetch_multiplier=1, worker_disable_prefetch=True, worker_send_task_events=False,
                    task_send_sent_event=False, task_default_queue=QUEUE, worker_hijack_root_logger=False,
                    worker_redirect_stdouts=False, broker_transport_options={"ack_emulation": False})
    app.steps["consumer"].add(WakeLoop)
    return app


def define_task(app: Celery, url: str) -> None:
    """The task: run the trial, push its last loss onto RESULTS."""
    results = redis.Redis.from_url(url)

    @app.task(name=TASK)
    def run_trial(params: dict[str, float], workdir: str) -> None:
        out = subprocess.run([sys.executable, "trial.py", json.dumps(params)], cwd=workdir, capture_output=True,
                             check=True).stdout.decode()
        results.lpush(RESULTS, json.dumps(float(out.strip().splitlines()[-1].partition("=")[2])))


def run(url: str, params: list[dict[str, float]], concurrency: int, workdir: Path) -> list[float]:
    """Every trial through the worker, `concurrency` in flight: the next is sent as a result comes back."""
    app = make_app(url)
    results = redis.Redis.from_url(url)

    def send(p: dict[str, float]) -> None:
        app.send_task(TASK, args=(p, str(workdir)), queue=QUEUE)

    losses: list[float] = []
    waiting = iter(params)
    for _ in params[:concurrency]:
        send(next(waiting))
    while len(losses) < len(params):
        popped = results.brpop([RESULTS], timeout=120)
        if popped is None:
            raise SystemExit("celery_floor: no result for 120 s (is its worker running?)")
        losses.append(json.loads(popped[1]))
        following = next(waiting, None)
        if following is not None:
            send(following)
    return losses


def main() -> None:
    url, concurrency = sys.argv[1], int(sys.argv[2])
    app = make_app(url)
    define_task(app, url)
    app.Worker(hostname=f"{QUEUE}@localhost", queues=[QUEUE], concurrency=concurrency, pool_cls="threads",
               loglevel="WARNING", without_mingle=True, without_gossip=True, without_heartbeat=True,
               quiet=True).start()


if __name__ == "__main__":
    main()
