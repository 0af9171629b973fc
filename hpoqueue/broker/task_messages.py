"""Celery task messages written by the scheduler straight onto the Redis broker's queue lists.

Celery's `send_task` cost the scheduler the import of Celery and kombu (about 0.1 s of CPU at start-up) and
about 0.3 ms per message. A message here is Celery's documented protocol 2 as kombu's Redis transport
stores it: a JSON envelope, whose body is the base64 of the JSON `[args, kwargs, embed]`, pushed on the
list named after the queue. `tests/broker/test_task_messages.py` checks it against what `send_task` writes.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

from hpoqueue.broker import keys
from hpoqueue.broker.client import UNREACHABLE, BrokerClient
from hpoqueue.broker.protocol import TrialSpec
from hpoqueue.errors import BrokerError

#: keep trying for about two minutes while the broker restarts: the trial row already exists, and a
#: message never sent would leave it WAITING until `hpoqueue resume` sends it again
SEND_TRIES = 60
SEND_RETRY_MAX = 2.0  #: seconds, the longest wait between two tries
ARGSREPR_MAX = 1024  #: characters of the arguments that Flower shows


def task_message(name: str, args: list[Any], queue: str, task_id: str, argsrepr: str, origin: str) -> bytes:
    """A protocol-2 message for task `name` with positional `args`, as the Redis transport stores it."""
    headers: dict[str, Any] = {
        "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
        "parent_id": None, "argsrepr": argsrepr, "kwargsrepr": "{}", "origin": origin,
        "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode("ascii"),
        "content-encoding": "utf-8", "content-type": "application/json", "headers": headers,
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }).encode()


class RedisDispatcher:
    """Sends trial attempts (task id = attempt id) as Celery tasks on the broker."""

    def __init__(self, client: BrokerClient) -> None:
        self.client = client
        self.origin = f"{os.getpid()}@{socket.gethostname()}"

    def dispatch(self, spec: TrialSpec, queue: str) -> None:
        self.dispatch_many([(spec, queue)])

    def dispatch_many(self, items: Sequence[tuple[TrialSpec, str]]) -> None:
        """Send attempts (spec, queue) in one round trip to the broker: the slots a batch of events freed are
        filled with one pipeline, not one exchange each; the shipped code's expiry starts again once."""
        if not items:
            return
        # argsrepr: Flower shows the parameters rather than the whole spec
        messages = [(queue, task_message("hpoqueue.run_trial", [spec.to_dict()], queue, spec.attempt_id,
                                         json.dumps(spec.params)[:ARGSREPR_MAX], self.origin))
                    for spec, queue in items]
        keep = sorted({keys.code(spec.code_hash) for spec, _ in items if spec.code_hash})
        for attempt in range(1, SEND_TRIES + 1):
            try:
                pipe = self.client.pipeline(transaction=False)
                for queue, message in messages:
                    pipe.lpush(keys.queue(queue), message)
                for key in keep:
                    pipe.expire(key, keys.CODE_TTL)
                pipe.execute()
                return
            except UNREACHABLE as exc:
                if attempt == SEND_TRIES:
                    first = items[0][0].attempt_id
                    raise BrokerError(f"cannot send task {first}" + (f" and {len(items) - 1} more" if len(items) > 1
                                                                    else "") + f" to queue {items[0][1]!r}: {exc} "
                                      "(the trial waits; `hpoqueue resume` sends it again once the broker is "
                                      "back)") from exc
                time.sleep(min(0.5 * attempt, SEND_RETRY_MAX))
