"""No attempt runs twice: duplicate messages for one attempt."""

from __future__ import annotations

import json

import pytest
import redis

from hpoqueue.broker import keys
from hpoqueue.broker.client import redis_client
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.broker.task_messages import RedisDispatcher
from tests.chaos.conftest import ChaosProject
from tests.e2e.conftest import alive, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(120)]

def _finished_tasks(chaos: ChaosProject) -> list[str]:
    """What each worker's run_trial task returned, from the Celery logs of both workers."""
    lines = []
    for log in chaos.root.glob("worker-*.log"):
        lines += [line for line in log.read_text().splitlines() if "hpoqueue.run_trial[" in line
                  and " succeeded in " in line]
    return lines


def test_the_same_attempt_delivered_three_times_runs_once(chaos: ChaosProject, redis_url: str) -> None:
    chaos.worker(redis_url, "one")
    chaos.worker(redis_url, "two")
    spec = TrialSpec(exp_id="dupe", trial_id="dupe-1", seq=1, attempt=1, params={"sleep": 1.5},
                     command="python chaos_trial.py", code_dir=str(chaos.root), work_dir=str(chaos.root / "dupe"))
    dispatcher = RedisDispatcher(redis_client(redis_url))  # as the scheduler sends it
    send = lambda: dispatcher.dispatch(spec, "cpu")  # noqa: E731
    send()
    send()  # two idle workers: both copies are taken at once, the claim lets one run
    wait_for(lambda: len(_finished_tasks(chaos)) == 2, 60, "both deliveries to be handled")
    send()  # a redelivery after the attempt finished
    wait_for(lambda: len(_finished_tasks(chaos)) == 3, 30, "the late delivery to be handled")
    assert sum("duplicate delivery ignored" in line for line in _finished_tasks(chaos)) == 2
    [run] = chaos.executions()["dupe-1"]
    assert run["ended"] and not alive(run["pid"])
    client = redis.Redis.from_url(redis_url)
    events = [json.loads(f[b"e"]) for _id, f in client.xrange(keys.events("dupe"))]
    assert [e["type"] for e in events].count("finished") == 1
    assert [e["type"] for e in events].count("started") == 1
