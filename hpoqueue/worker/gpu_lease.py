"""The per-(host, GPU) cap shared by every worker of a host: leases in Redis that expire unless renewed.

Each GPU is a sorted set (keys.gpu: `hpoqueue:gpu:<host>:<gpu>`) whose members are holders (trial attempt
ids) and whose scores are expiry times. Every operation is one Lua script, so checking the cap and taking
slots is atomic across workers and boxes. Time is the Redis server's clock (TIME inside the script), so
boxes with skewed clocks agree; a `clock` may be passed instead to simulate time in tests. A crashed worker
stops renewing, and its slots free themselves `ttl` seconds later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hpoqueue.broker import keys
from hpoqueue.broker.client import BrokerClient, Pending, Pipeline, Reply
from hpoqueue.errors import GpuError

# Shared prologue: "now" is ARGV[1] when the caller simulates time, else the server's clock. Scripts that
# write after TIME rely on effects replication, the default since Redis 5.
_NOW = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: one per GPU. ARGV: now, holder, cap, ttl. Takes a slot on every GPU or on none.
_ACQUIRE = _NOW + """
local holder, cap, expiry = ARGV[2], tonumber(ARGV[3]), now + tonumber(ARGV[4])
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if not redis.call('ZSCORE', key, holder) and redis.call('ZCARD', key) >= cap then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, holder)
end
return 1
"""

# KEYS: one per GPU. ARGV: now, holder, ttl. Extends every lease, or none when any was lost.
_RENEW = _NOW + """
local holder, expiry = ARGV[2], now + tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  local score = redis.call('ZSCORE', key, holder)
  if not score or tonumber(score) <= now then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, holder)
end
return 1
"""

# KEYS: one GPU. ARGV: now. The live holders.
_HOLDERS = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS: one per candidate GPU, required ones first. ARGV: now, holder, cap, ttl, count, number of required
# GPUs, then the candidates' GPU indices. Takes every required GPU plus the least-loaded others with a free
# slot (ties: candidate order), `count` in all, and returns their indices; an empty list when they do not fit.
_PICK = _NOW + """
local holder, cap, expiry = ARGV[2], tonumber(ARGV[3]), now + tonumber(ARGV[4])
local count, required = tonumber(ARGV[5]), tonumber(ARGV[6])
local free = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local load = redis.call('ZCARD', key)
  if redis.call('ZSCORE', key, holder) then
    load = load - 1
  end
  if load < cap then
    table.insert(free, {i <= required and -1 or load, i})
  elseif i <= required then
    return {}
  end
end
if #free < count then
  return {}
end
table.sort(free, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
local chosen = {}
for j = 1, count do
  local i = free[j][2]
  redis.call('ZADD', KEYS[i], expiry, holder)
  table.insert(chosen, ARGV[6 + i])
end
return chosen
"""


class GpuLeases:
    """Slots on the GPUs of one host, at most `cap` holders per GPU, shared by every worker of that host.

    A holder keeps its slots by calling `renew` more often than every `ttl` seconds; a holder that stops
    (a crashed worker) loses them `ttl` seconds after its last acquire or renew.
    """

    def __init__(self, client: BrokerClient, host: str, *, ttl: float = 30.0,
                 clock: Callable[[], float] | None = None) -> None:
        if ttl <= 0:
            raise GpuError(f"GPU lease ttl is {ttl}; it must be a positive number of seconds")
        if not host or ":" in host:
            raise GpuError(f"GPU lease host {host!r} must be a non-empty name without ':' (use the hostname)")
        self.client = client
        self.host = host
        self.ttl = ttl
        self.clock = clock
        self._acquire = client.script(_ACQUIRE)
        self._renew = client.script(_RENEW)
        self._holders = client.script(_HOLDERS)
        self._pick = client.script(_PICK)

    def __repr__(self) -> str:
        clock = "server" if self.clock is None else "simulated"
        return f"GpuLeases(host={self.host!r}, ttl={self.ttl}, clock={clock})"

    def key(self, gpu: int) -> str:
        """The Redis key of GPU `gpu` on this host."""
        return keys.gpu(self.host, gpu)

    def _now(self) -> str:
        """ARGV[1] of every script: the simulated time, or '' for the server's clock."""
        return "" if self.clock is None else repr(float(self.clock()))

    def _keys(self, gpus: Sequence[int]) -> list[str]:
        if len(set(gpus)) != len(gpus):
            raise GpuError(f"GPU list {list(gpus)} repeats an index (each GPU can be leased once per holder)")
        return [self.key(gpu) for gpu in gpus]

    @staticmethod
    def _check_cap(cap: int) -> None:
        if cap < 1:
            raise GpuError(f"maxTrialNumberPerGpu is {cap}; it must be at least 1")

    def acquire(self, gpus: Sequence[int], holder: str, cap: int) -> bool:
        """Take one slot on every GPU of `gpus` for `holder` iff each has fewer than `cap` live holders.

        All or nothing; acquiring again as the same holder succeeds and renews.
        """
        self._check_cap(cap)
        if not gpus:
            return True
        return bool(self._acquire(keys=self._keys(gpus), args=[self._now(), holder, cap, self.ttl]))

    def renew(self, gpus: Sequence[int], holder: str) -> bool:
        """Extend `holder`'s leases on `gpus` by ttl (a heartbeat); False, extending none, if any was lost."""
        if not gpus:
            return True
        return bool(self._renew(keys=self._keys(gpus), args=[self._now(), holder, self.ttl]))

    def renew_in(self, gpus: Sequence[int], holder: str, pipe: Pipeline) -> Pending[Reply]:
        """Queue `renew` in `pipe`; once it ran, the reply is true iff every lease was extended."""
        return pipe.eval(self._renew, self._keys(gpus), [self._now(), holder, self.ttl])

    def release(self, gpus: Sequence[int], holder: str, pipe: Pipeline | None = None) -> None:
        """Give `holder`'s slots on `gpus` back; releasing a slot not held is harmless. With `pipe` (a
        transaction), the release is queued in it, to happen with whatever else it holds."""
        if pipe is not None:
            for key in self._keys(gpus):
                pipe.zrem(key, holder)
            return
        own = self.client.pipeline(transaction=True)
        self.release(gpus, holder, own)
        own.execute()

    def holders(self, gpu: int) -> list[str]:
        """The live holders of GPU `gpu` (expired leases are dropped on the way)."""
        members = self._holders(keys=[self.key(gpu)], args=[self._now()])
        return sorted(m.decode() for m in members if isinstance(m, bytes)) if isinstance(members, list) else []

    def pick(self, candidates: Sequence[int], count: int, holder: str, cap: int,
             required: Sequence[int] = ()) -> list[int] | None:
        """Choose `count` of `candidates` with a free slot, least-loaded first, and acquire them atomically.

        Every GPU of `required` (e.g. the GPU the worker's queue names) is among those chosen. Returns the
        chosen indices (required ones first, then in load order), or None when they do not fit now.
        """
        self._check_cap(cap)
        if count < 0:
            raise GpuError(f"cannot pick {count} GPUs; trialGpuNumber must be 0 or more")
        if len(required) > count:
            raise GpuError(f"cannot pick {count} GPUs that include all of {list(required)} (required)")
        ordered = [*required, *(gpu for gpu in candidates if gpu not in required)]
        if count == 0:
            return []
        if count > len(ordered):
            return None
        chosen = self._pick(keys=self._keys(ordered),
                            args=[self._now(), holder, cap, self.ttl, count, len(required), *ordered])
        return [int(i) for i in chosen if isinstance(i, (bytes, int))] or None if isinstance(chosen, list) else None
