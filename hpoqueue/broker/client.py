"""The one typed door to Redis: every command hpoqueue sends, with the types of its replies.

redis-py's methods return Any; here each operation hpoqueue uses is one method whose reply is converted to
what it is (bytes, int, a list of entries...), so a misread reply is a type error, not a surprise at run
time. Only this module imports redis (tests/broker/test_client.py holds it so). The batched paths use
`Pipeline`, whose commands return a `Pending` filled in by `execute()`: one round trip, typed replies. Lua
scripts are registered once per client (`script`) and run by their SHA (EVALSHA).

Errors: `RedisError` is any failure of the broker; `UNREACHABLE` the ones that mean it is away (restart,
network), after which a caller retries; `ResponseError` a command Redis refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import redis

from hpoqueue import settings

RedisError = redis.RedisError
ResponseError = redis.ResponseError
#: the broker is away (restart, network): retry later
UNREACHABLE: tuple[type[RedisError], ...] = (redis.ConnectionError, redis.TimeoutError)

#: what a Lua script returns: an integer (false is None), a bulk string, or a list of those
Reply = int | bytes | None | list["Reply"]
Arg = str | bytes | int | float
#: one stream entry: its id and its fields
Entry = tuple[bytes, dict[bytes, bytes]]
T = TypeVar("T")


def connect(url: str, **options: Any) -> BrokerClient:
    """A client for `url`; for rediss:// the CA in $HPOQUEUE_BROKER_CA (if set) verifies the server, as it
    does for Celery's own connection."""
    ca = settings.broker_ca()
    if urlsplit(url).scheme == "rediss" and ca and "ssl_ca_certs" not in url:
        options.setdefault("ssl_ca_certs", ca)
    return BrokerClient(redis.Redis.from_url(url, **options))


@cache
def redis_client(url: str) -> BrokerClient:
    """One client (and connection pool) per broker URL and process."""
    return connect(url, health_check_interval=30, socket_keepalive=True, retry_on_timeout=True)


def _int(reply: Any) -> int:
    return int(reply)


def _bool(reply: Any) -> bool:
    return bool(reply)


def _bytes(reply: Any) -> bytes:
    return cast(bytes, reply)


def _bytes_or_none(reply: Any) -> bytes | None:
    return cast("bytes | None", reply)


def _bytes_list(reply: Any) -> list[bytes]:
    return cast("list[bytes]", reply)


def _hash(reply: Any) -> dict[bytes, bytes]:
    return cast("dict[bytes, bytes]", reply)


def _reply(reply: Any) -> Reply:
    return cast(Reply, reply)


def _streams(reply: Any) -> dict[str, list[Entry]]:
    """XREADGROUP's reply, as each stream's entries by its name (an entry deleted after delivery has no
    fields; a stream with nothing new is absent)."""
    return {stream.decode(): [(entry_id, fields or {}) for entry_id, fields in entries]
            for stream, entries in reply or []}


def _time(reply: Any) -> float:
    seconds, micros = reply
    return int(seconds) + int(micros) / 1e6


class Pending(Generic[T]):
    """The reply of a command queued on a Pipeline, there once the pipeline has been executed."""

    __slots__ = ("_convert", "value")

    def __init__(self, convert: Callable[[Any], T]) -> None:
        self._convert = convert
        self.value: T

    def _set(self, reply: Any) -> None:
        self.value = self._convert(reply)


class Script:
    """A Lua script registered on one client; called, it runs by its SHA (loaded again if Redis lost it)."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.source = source
        self._script = client.register_script(source)

    def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Reply:
        return _reply(self._script(keys=list(keys), args=list(args)))


class BrokerClient:
    """A Redis connection pool with one typed method per command hpoqueue sends (replies as bytes)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._scripts: dict[str, Script] = {}

    def script(self, source: str) -> Script:
        """The script `source`, registered on first use."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = Script(self._redis, source)
        return found

    def apart(self) -> BrokerClient:
        """A client on a connection of its own to the same server, waiting a second at most: for a signal
        handler, which must not take a connection from the pool that the code it interrupted may hold."""
        pool = self._redis.connection_pool
        options = {**pool.connection_kwargs, "socket_connect_timeout": 1.0, "socket_timeout": 1.0}
        return BrokerClient(redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, **options)))

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """Commands sent together in one round trip (atomically with `transaction`)."""
        return Pipeline(self._redis.pipeline(transaction=transaction))

    # ---- connection ----
    def ping(self) -> bool:
        return _bool(self._redis.ping())

    def close(self) -> None:
        self._redis.close()

    def config_file(self) -> str:
        """The configuration file the server was started with ('' for none)."""
        info = cast("dict[str, object]", self._redis.info("server"))
        return str(info.get("config_file") or "")

    def shutdown(self) -> None:
        """SHUTDOWN: the server saves its append-only file and exits."""
        self._redis.shutdown()

    def unblock_clients(self, name: str) -> int:
        """Answer at once the blocking commands (a worker's BRPOP) of this server's connections named
        `name`; how many were waiting."""
        blocked = [int(c["id"]) for c in self._redis.client_list()
                   if c.get("name") == name and "b" in str(c.get("flags", ""))]
        for client_id in blocked:
            self._redis.client_unblock(client_id)
        return len(blocked)

    def time(self) -> float:
        """The server's clock, in seconds."""
        return _time(self._redis.time())

    # ---- keys and strings ----
    def get(self, key: str) -> bytes | None:
        return _bytes_or_none(self._redis.get(key))

    def set(self, key: str, value: Arg, *, nx: bool = False, ex: int | None = None, px: int | None = None) -> bool:
        """SET; False when `nx` and the key existed."""
        return _bool(self._redis.set(key, value, nx=nx, ex=ex, px=px))

    def expire(self, key: str, seconds: int) -> bool:
        """False when the key does not exist."""
        return _bool(self._redis.expire(key, seconds))

    def persist(self, key: str) -> bool:
        return _bool(self._redis.persist(key))

    def exists(self, key: str) -> bool:
        return _bool(self._redis.exists(key))

    # ---- lists and hashes ----
    def rpush(self, key: str, *values: Arg) -> int:
        return _int(self._redis.rpush(key, *values))

    def lpop(self, key: str) -> bytes | None:
        return _bytes_or_none(self._redis.lpop(key))

    def hset(self, key: str, field: str, value: Arg) -> int:
        return _int(self._redis.hset(key, field, value))

    def hdel(self, key: str, *fields: str) -> int:
        return _int(self._redis.hdel(key, *fields))

    def hincrby(self, key: str, field: str, amount: int = 1) -> int:
        return _int(self._redis.hincrby(key, field, amount))

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return _hash(self._redis.hgetall(key))

    # ---- streams ----
    def create_group(self, stream: str, group: str) -> bool:
        """Create consumer group `group` reading `stream` from its start (and the stream); False when it
        exists already."""
        try:
            self._redis.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True


class Pipeline:
    """Commands queued and sent in one round trip by `execute()`; each returns its Pending reply."""

    def __init__(self, pipe: redis.client.Pipeline) -> None:
        self._pipe = pipe
        self._pending: list[Pending[Any]] = []

    def _queue(self, convert: Callable[[Any], T]) -> Pending[T]:
        pending = Pending(convert)
        self._pending.append(pending)
        return pending

    def execute(self) -> None:
        """Send the queued commands and fill in their replies; raises the first error."""
        replies = self._pipe.execute()
        for pending, reply in zip(self._pending, replies, strict=True):
            pending._set(reply)

    def eval(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Pending[Reply]:
        self._pipe.eval(script.source, len(keys), *keys, *args)
        return self._queue(_reply)

    def exists(self, key: str) -> Pending[bool]:
        self._pipe.exists(key)
        return self._queue(_bool)

    def expire(self, key: str, seconds: int) -> Pending[bool]:
        self._pipe.expire(key, seconds)
        return self._queue(_bool)

    def delete(self, *keys: str) -> Pending[int]:
        self._pipe.delete(*keys)
        return self._queue(_int)

    def lpush(self, key: str, *values: Arg) -> Pending[int]:
        self._pipe.lpush(key, *values)
        return self._queue(_int)

    def rpush(self, key: str, *values: Arg) -> Pending[int]:
        self._pipe.rpush(key, *values)
        return self._queue(_int)

    def lpop(self, key: str) -> Pending[bytes | None]:
        self._pipe.lpop(key)
        return self._queue(_bytes_or_none)

    def lrange(self, key: str, start: int, end: int) -> Pending[list[bytes]]:
        self._pipe.lrange(key, start, end)
        return self._queue(_bytes_list)

    def hdel(self, key: str, *fields: str) -> Pending[int]:
        self._pipe.hdel(key, *fields)
        return self._queue(_int)

    def hincrby(self, key: str, field: str, amount: int = 1) -> Pending[int]:
        self._pipe.hincrby(key, field, amount)
        return self._queue(_int)

    def hgetall(self, key: str) -> Pending[dict[bytes, bytes]]:
        self._pipe.hgetall(key)
        return self._queue(_hash)

    def time(self) -> Pending[float]:
        """The server's clock, in seconds."""
        self._pipe.time()
        return self._queue(_time)

    def zrem(self, key: str, *members: str) -> Pending[int]:
        self._pipe.zrem(key, *members)
        return self._queue(_int)

    def xadd(self, stream: str, fields: Mapping[str, Arg], maxlen: int | None = None) -> Pending[bytes]:
        """XADD; `maxlen`: keep only that many entries, the newest (exactly)."""
        entry: dict[Any, Any] = dict(fields)
        self._pipe.xadd(stream, entry, maxlen=maxlen, approximate=False)
        return self._queue(_bytes)

    def xack(self, stream: str, group: str, *ids: bytes) -> Pending[int]:
        self._pipe.xack(stream, group, *ids)
        return self._queue(_int)

    def xdel(self, stream: str, *ids: bytes) -> Pending[int]:
        self._pipe.xdel(stream, *ids)
        return self._queue(_int)

    def read_group(self, group: str, consumer: str, streams: Mapping[str, str], *, count: int | None,
                   block_ms: int | None) -> Pending[dict[str, list[Entry]]]:
        """XREADGROUP on `streams` (name: start, '>' for new entries, '0' for those delivered but not
        acknowledged), at most `count` entries each (None: all), waiting up to `block_ms` for one in any of
        them (None: not at all; 0 would wait for ever)."""
        starts: dict[Any, Any] = dict(streams)
        self._pipe.xreadgroup(group, consumer, starts, count=count, block=block_ms)
        return self._queue(_streams)
