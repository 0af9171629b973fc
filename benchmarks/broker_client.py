"""What the typed broker client (hpoqueue/broker/client.py) costs on the hot paths, against redis-py itself.

    python benchmarks/broker_client.py [--calls 2000] [--rounds 5]

On an embedded Redis, each path runs the same commands in the same round trips twice: through `Channel`
(the typed client, its Pending replies and conversions) and through a bare redis-py pipeline. The paths: a
worker's slice (`Channel.emit_many`: three events and the stop check, one MULTI round trip), the scheduler's
read (`Channel.read_events`: acknowledge the last batch and read the next, one round trip), and a resume's
question about 100 attempts' claims (`Channel.claimed`, one round trip; before, one round trip each).
Prints microseconds per call, medians over rounds run back to back.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from hpoqueue.broker import events, keys
from hpoqueue.broker.client import connect
from hpoqueue.broker.embedded import EmbeddedRedis
from hpoqueue.broker.protocol import GROUP, Channel

EXP = "bench"
ATTEMPT = f"{EXP}-1-a1"


def _events() -> list[events.Event]:
    now = time.time()
    return [events.Metric(trial=f"{EXP}-1", attempt=1, ts=now, kind="intermediate", step=i, value=0.5, data=0.5)
            for i in range(3)]


def typed_emit(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    batch = _events()
    return lambda: channel.emit_many(ATTEMPT, batch, take_stop=True) and None


def raw_emit(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    batch = _events()

    def emit() -> None:
        pipe = raw.pipeline(transaction=True)
        for event in batch:
            pipe.xadd(channel.events_key, {"e": events.encode(event)})
        pipe.lpop(keys.stop(ATTEMPT))
        events.stop_reason(pipe.execute()[-1])
    return emit


def typed_read(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    unacked: list[bytes] = []

    def read() -> None:
        batch = channel.read_events(0, count=3, pending=False, ack=unacked)
        unacked[:] = [entry for entry, _ in batch]
    return read


def raw_read(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    unacked: list[bytes] = []

    def read() -> None:
        pipe = raw.pipeline(transaction=False)
        if unacked:
            pipe.xack(channel.events_key, GROUP, *unacked)
            pipe.xdel(channel.events_key, *unacked)
        pipe.xreadgroup(GROUP, "scheduler", {channel.events_key: ">"}, count=3, block=None)
        reply = pipe.execute()[-1]
        unacked[:] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                if fields:
                    events.decode(fields[b"e"])
                    unacked.append(entry_id)
    return read


ATTEMPTS = [f"{EXP}-{seq}-a1" for seq in range(100)]


def typed_claimed(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    return lambda: channel.claimed(ATTEMPTS) and None


def one_at_a_time(channel: Channel, raw: redis.Redis) -> Callable[[], None]:
    return lambda: [channel.is_claimed(a) for a in ATTEMPTS] and None


def timed(call: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        url = server.start()
        try:
            channel, raw = Channel(connect(url), EXP), redis.Redis.from_url(url)
            channel.ensure_group()
            for seq in range(0, 100, 2):
                channel.claim(f"{EXP}-{seq}-a1", "bench")
            pairs = [("worker slice: emit_many (3 events + stop check)", typed_emit, raw_emit),
                     ("scheduler: read_events (ack + read 3)", typed_read, raw_read)]
            results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in pairs}
            claims: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                for name, typed, bare in pairs:  # the two emits send what the two reads take
                    results[name].append((timed(typed(channel, raw), args.calls),
                                          timed(bare(channel, raw), args.calls)))
                claims.append((timed(typed_claimed(channel, raw), args.calls // 10),
                               timed(one_at_a_time(channel, raw), args.calls // 10)))
        finally:
            server.stop()
    print("| path | typed client µs/call | redis-py µs/call | ratio |\n|---|---|---|---|")
    for name, rows in results.items():
        typed_us = statistics.median(r[0] for r in rows)
        bare_us = statistics.median(r[1] for r in rows)
        print(f"| {name} | {typed_us:.0f} | {bare_us:.0f} | {typed_us / bare_us:.2f} |")
    batched = statistics.median(r[0] for r in claims)
    single = statistics.median(r[1] for r in claims)
    print(f"| resume: claims of 100 attempts, Channel.claimed vs is_claimed each | {batched:.0f} | {single:.0f} "
          f"| {batched / single:.2f} |")


if __name__ == "__main__":
    main()
