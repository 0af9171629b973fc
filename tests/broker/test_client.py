"""Only hpoqueue/broker/client.py talks to redis-py, and what it hands on is typed: redis-py returns Any,
which would otherwise spread through every module that reads the broker unchecked."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from hpoqueue.broker import client
from hpoqueue.broker.client import UNREACHABLE, BrokerClient, Pipeline, connect
from hpoqueue.broker.embedded import free_port
from hpoqueue.broker.protocol import Channel

PACKAGE = Path(client.__file__).parents[1]
ALLOWED = {PACKAGE / "broker" / "client.py"}


def _imports_redis(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(name == "redis" or name.startswith("redis.") for name in names):
            return True
    return False


def test_no_module_but_the_client_imports_redis() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
                 if p not in ALLOWED and _imports_redis(p)]
    assert offenders == []
    assert _imports_redis(PACKAGE / "broker" / "client.py")  # the check sees an import where there is one


def test_no_method_of_the_client_returns_any() -> None:
    for cls in (BrokerClient, Pipeline, client.Script, client.Pending):
        for name, method in vars(cls).items():
            if callable(method) and not name.startswith("_") or name == "__call__":
                hints = typing.get_type_hints(method, vars(client))
                assert "return" in hints and hints["return"] is not typing.Any, f"{cls.__name__}.{name}"
                assert "Any" not in repr(hints["return"]), f"{cls.__name__}.{name} returns {hints['return']}"


def test_replies_come_typed_and_a_pipeline_is_one_round_trip(redis_url: str) -> None:
    broker = connect(redis_url)
    assert broker.ping() is True and broker.set("k", "v", nx=True) is True and broker.set("k", "w", nx=True) is False
    assert broker.get("k") == b"v" and broker.exists("k") is True and broker.get("missing") is None
    assert broker.hincrby("h", "a") == 1 and broker.hgetall("h") == {b"a": b"1"}
    assert broker.create_group("s", "g") is True and broker.create_group("s", "g") is False
    pipe = broker.pipeline(transaction=True)
    added = pipe.xadd("s", {"e": "x"})
    pushed = pipe.rpush("l", "a", "b")
    popped = pipe.lpop("l")
    read = pipe.read_group("g", "c", {"s": ">"}, count=10, block_ms=None)
    pipe.execute()
    assert isinstance(added.value, bytes) and pushed.value == 2 and popped.value == b"a"
    assert read.value == {"s": [(added.value, {b"e": b"x"})]}
    script = broker.script("return {1, redis.call('GET', KEYS[1]), ARGV[1]}")
    assert broker.script(script.source) is script  # registered once
    assert script(keys=["k"], args=[7]) == [1, b"v", b"7"]


def test_a_broker_away_raises_what_callers_retry_on() -> None:
    broker = connect(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        broker.get("k")
    except UNREACHABLE:
        pass
    else:
        raise AssertionError("no error from a broker that is not there")


def test_which_attempts_are_claimed_is_one_question(redis_url: str) -> None:
    channel = Channel(connect(redis_url), "cl")
    assert channel.claim("cl-1-a1", "w")[0] and channel.claim("cl-3-a2", "w")[0]
    assert channel.claimed(["cl-1-a1", "cl-2-a1", "cl-3-a2"]) == {"cl-1-a1", "cl-3-a2"}
    assert channel.claimed([]) == set()
