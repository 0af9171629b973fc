"""Live capacity: each worker announces the queues it consumes and how many trials it runs at once, so
the scheduler routes trials only where a worker can take them and never fills queues far ahead."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from hpoqueue.broker import keys
from hpoqueue.broker.client import BrokerClient, RedisError

ANNOUNCE_EVERY = 5.0  #: seconds between two announcements of a worker
STALE_AFTER = 20.0  #: an announcement older than this is a worker that is gone


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker as it announced itself."""

    name: str
    host: str
    queues: tuple[str, ...]
    concurrency: int
    seen: float  #: the broker's clock when it last announced


def announce(client: BrokerClient, name: str, host: str, queues: Iterable[str], concurrency: int) -> None:
    """Record (or refresh) worker `name`, stamped with the broker's clock so that boxes agree."""
    info = {"host": host, "queues": sorted(queues), "concurrency": concurrency, "seen": client.time()}
    client.hset(keys.workers(), name, json.dumps(info))


def withdraw(client: BrokerClient, name: str) -> None:
    client.hdel(keys.workers(), name)


def live_workers(client: BrokerClient) -> list[WorkerInfo]:
    """Workers that announced themselves within STALE_AFTER seconds."""
    return alive(client.hgetall(keys.workers()), client.time())


def alive(announced: dict[bytes, bytes], now: float) -> list[WorkerInfo]:
    """The workers of `announced` (the workers hash as read) that announced themselves within STALE_AFTER
    seconds of the broker's clock `now`."""
    out = []
    for name, raw in announced.items():
        info = json.loads(raw)
        if now - info["seen"] <= STALE_AFTER:
            out.append(WorkerInfo(name=name.decode(), host=info["host"], queues=tuple(info["queues"]),
                                  concurrency=int(info["concurrency"]), seen=info["seen"]))
    return out


def queue_capacity(workers: Iterable[WorkerInfo], queues: Iterable[str]) -> dict[str, int]:
    """How many trials each of `queues` can run at once over all live workers ({} when none announced)."""
    workers = list(workers)
    if not workers:
        return {}
    return {q: sum(w.concurrency for w in workers if q in w.queues) for q in queues}


class Announcer:
    """A daemon thread announcing one worker every ANNOUNCE_EVERY seconds until `stop()`."""

    def __init__(self, client: BrokerClient, name: str, host: str, queues: Iterable[str], concurrency: int) -> None:
        self.client = client
        self.args = (name, host, tuple(queues), concurrency)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpoqueue-announcer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                announce(self.client, *self.args)
            except RedisError:
                pass  # the broker is restarting; the next round announces again
            self._stop.wait(ANNOUNCE_EVERY)

    def stop(self) -> None:
        self._stop.set()
        try:
            withdraw(self.client, self.args[0])
        except RedisError:
            pass
