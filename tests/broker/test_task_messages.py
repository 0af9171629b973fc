"""The scheduler's task messages: what Celery's own `send_task` writes, and sent across a broker restart."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from hpoqueue.broker import task_messages
from hpoqueue.broker.app import make_app
from hpoqueue.broker.client import BrokerClient, connect
from hpoqueue.broker.embedded import EmbeddedRedis, free_port
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.broker.task_messages import RedisDispatcher
from hpoqueue.errors import BrokerError

SPEC = TrialSpec(exp_id="exp", trial_id="exp-3", seq=3, attempt=2, params={"lr": 0.1, "opt": "adam"},
                 command="python train.py", code_dir="/code", work_dir="/work/exp")


def read(client: redis.Redis, queue: str) -> dict[str, Any]:
    [raw] = client.lrange(queue, 0, -1)
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


CASES: dict[str, tuple[Callable[[RedisDispatcher, str], None], str, list[Any], dict[str, Any]]] = {
    "trial": (lambda d, q: d.dispatch(SPEC, q), "hpoqueue.run_trial", [SPEC.to_dict()],
              {"task_id": SPEC.attempt_id, "argsrepr": json.dumps(SPEC.params)}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_message_is_what_celery_send_task_writes(case: str, redis_url: str) -> None:
    send, name, args, options = CASES[case]
    queue = "gpu1"
    client = redis.Redis.from_url(redis_url)
    send(RedisDispatcher(connect(redis_url)), queue)
    ours = read(client, queue)
    make_app(redis_url).send_task(name, args=args, queue=queue, **options)
    theirs = json.loads(client.lpop(queue))  # the older message is at the right end: ours
    theirs["body"] = json.loads(base64.b64decode(theirs["body"]))

    assert ours["body"] == theirs["body"]
    assert ours["headers"].keys() == theirs["headers"].keys()
    same = {k for k in theirs["headers"] if k not in ("origin", "ignore_result", "id", "root_id")}
    assert {k: ours["headers"][k] for k in same} == {k: theirs["headers"][k] for k in same}
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"]["ignore_result"] is True  # results travel on hpoqueue's event stream
    assert ours["properties"].keys() <= theirs["properties"].keys()
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert {k: ours[k] for k in ("content-type", "content-encoding")} == \
        {k: theirs[k] for k in ("content-type", "content-encoding")}
    if case == "trial":
        assert ours["headers"]["id"] == SPEC.attempt_id  # a second delivery is recognised by its claim


def test_a_batch_of_attempts_is_each_one_message_on_its_queue_in_order(redis_url: str) -> None:
    """The slots a batch of events freed are filled in one send: each attempt its own message, on its own
    queue, taken by workers in the order sent, exactly as one dispatch at a time would leave them."""
    specs = [(replace(SPEC, trial_id=f"exp-{seq}", seq=seq, attempt=1), queue)
             for seq, queue in ((4, "gpu0"), (5, "gpu1"), (6, "gpu0"))]
    batched, single = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    RedisDispatcher(BrokerClient(batched)).dispatch_many(specs)
    sent = {q: [json.loads(m)["headers"]["id"] for m in batched.lrange(q, 0, -1)] for q in ("gpu0", "gpu1")}
    batched.delete("gpu0", "gpu1")
    for spec, queue in specs:
        RedisDispatcher(BrokerClient(single)).dispatch(spec, queue)
    assert sent == {q: [json.loads(m)["headers"]["id"] for m in single.lrange(q, 0, -1)] for q in ("gpu0", "gpu1")}
    assert sent == {"gpu0": ["exp-6-a1", "exp-4-a1"], "gpu1": ["exp-5-a1"]}  # LPUSH: workers pop from the right
    batched.delete("gpu0", "gpu1")


def test_a_message_waits_for_a_restarting_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_messages, "SEND_RETRY_MAX", 0.2)
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())  # not started yet: the broker is down
    starter = threading.Timer(1.0, server.start)
    starter.start()
    try:
        RedisDispatcher(connect(server.url)).dispatch(SPEC, "cpu")
        starter.join()
        assert read(redis.Redis.from_url(server.url), "cpu")["headers"]["id"] == SPEC.attempt_id
    finally:
        starter.join()
        server.stop()


def test_a_broker_that_stays_away_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_messages, "SEND_TRIES", 2)
    client = connect(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerError, match=rf"cannot send task {SPEC.attempt_id} to queue 'cpu'.*hpoqueue resume"):
        RedisDispatcher(client).dispatch(SPEC, "cpu")
