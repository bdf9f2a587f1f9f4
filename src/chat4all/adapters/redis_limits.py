"""RateLimiter on Redis: every API node counts against the same numbers.

One Lua script per check, so the rules of a request are charged atomically (all or none) in one
round trip, with Redis's own clock (``TIME``) so that nodes' clocks never disagree. The GCRA sums
are those of ``domain/limits.gcra``. Keys: ``{prefix}:rl:{key}`` (a TAT in ms, expiring when the
allowance is full again) and ``{prefix}:fail:{key}`` (a hash: streak, locked-until ms).
"""

from __future__ import annotations

from redis.asyncio import Redis

from chat4all.adapters.redis import unavailable
from chat4all.domain.limits import Backoff, Decision, Limit, verdict

# KEYS: the rules' keys. ARGV: limit, window ms, cost for each. Returns per rule
# {allowed, remaining, reset ms, retry ms}; stores the new TATs only if every rule allowed.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, news, all = {}, {}, true
for i = 1, #KEYS do
  local limit, window, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local interval = window / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - window
  if allow_at <= now then
    news[i] = new_tat
    out[i] = {1, math.floor((now - allow_at) / interval), math.ceil(new_tat - now), 0}
  else
    all = false
    local retry = window
    if cost <= limit then retry = allow_at - now end
    local remaining = math.floor((now - (tat - window)) / interval)
    if remaining < 0 then remaining = 0 end
    out[i] = {0, remaining, math.ceil(tat - now), math.ceil(retry)}
  end
end
if all then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], tostring(news[i]), 'PX', math.ceil(news[i] - now) + 1)
  end
end
return out
"""

# KEYS: the failure hash. ARGV: free, base ms, max ms, forget ms. Returns the lock in ms.
_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free, base, max, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0') + 1
local lock = 0
if streak > free then
  local n = streak - free - 1
  if n > 62 then n = 62 end
  lock = base * (2 ^ n)
  if lock > max then lock = max end
end
lock = math.floor(lock)
redis.call('HSET', KEYS[1], 'streak', streak, 'until', now + lock)
redis.call('PEXPIRE', KEYS[1], lock + forget)
return lock
"""

_LOCKED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local u = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if u > now then return u - now end
return 0
"""


class RedisRateLimiter:
    def __init__(self, client: Redis, *, key_prefix: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self._hit = client.register_script(_HIT)
        self._fail = client.register_script(_FAIL)
        self._locked = client.register_script(_LOCKED)

    async def hit(self, *rules: Limit) -> Decision:
        keys = [f"{self._prefix}:rl:{r.key}" for r in rules]
        args: list[int] = []
        for r in rules:
            args += [r.limit, max(1, round(r.window_s * 1000)), r.cost]
        with unavailable("Redis does not answer"):
            rows = await self._hit(keys=keys, args=args)
        decisions = [
            Decision(bool(allowed), r.limit, int(remaining), int(reset) / 1000.0, int(retry) / 1000.0)
            for r, (allowed, remaining, reset, retry) in zip(rules, rows, strict=True)
        ]
        return verdict(decisions)

    async def fail(self, backoff: Backoff) -> float:
        args = [backoff.free, round(backoff.base_s * 1000), round(backoff.max_s * 1000), round(backoff.forget_s * 1000)]
        with unavailable("Redis does not answer"):
            lock = await self._fail(keys=[self._failure_key(backoff.key)], args=args)
        return int(lock) / 1000.0

    async def locked_for(self, key: str) -> float:
        with unavailable("Redis does not answer"):
            left = await self._locked(keys=[self._failure_key(key)])
        return int(left) / 1000.0

    async def clear(self, key: str) -> None:
        with unavailable("Redis does not answer"):
            await self._client.delete(self._failure_key(key))

    def _failure_key(self, key: str) -> str:
        return f"{self._prefix}:fail:{key}"


class RedisAcceptedIds:
    """AcceptedIds on Redis: ``SET {prefix}:mid:{id} sender|conversation NX GET EX ttl``, one
    round trip that both takes a free id and tells who holds a taken one."""

    def __init__(self, client: Redis, *, key_prefix: str, ttl_s: int) -> None:
        self._client = client
        self._prefix = key_prefix
        self._ttl = ttl_s

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        with unavailable("Redis does not answer"):
            old = await self._client.set(
                f"{self._prefix}:mid:{message_id}", f"{sender}|{conversation_id}", nx=True, get=True, ex=self._ttl
            )
        if old is None:
            return None
        holder, _, conversation = (old.decode() if isinstance(old, bytes) else str(old)).partition("|")
        return holder, conversation

    async def release(self, message_id: str) -> None:
        with unavailable("Redis does not answer"):
            await self._client.delete(f"{self._prefix}:mid:{message_id}")
