"""RateLimiter on Redis: every API node counts against the same numbers.

Checks are group-committed (``batching.GroupCommit``): the hits that arrive while a call is in
flight go together in the next one, one Lua call that evaluates them in arrival order, each hit
all or none over its own rules, exactly as one call per hit would. Redis's own clock (``TIME``)
is the clock, so that nodes' clocks never disagree. The GCRA sums are those of
``domain/limits.gcra``. Keys: ``{prefix}:rl:{key}`` (a TAT in ms, expiring when the
allowance is full again) and ``{prefix}:fail:{key}`` (a hash: streak, locked-until ms).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from chat4all.adapters.redis import unavailable
from chat4all.batching import GroupCommit
from chat4all.domain.limits import Backoff, Decision, Limit, verdict

# KEYS: the rules' keys, hit after hit. ARGV: the number of hits, then per hit its number of rules
# and, per rule, limit, window ms, cost. Returns per hit, per rule {allowed, remaining, reset ms,
# retry ms}. A hit reads the TATs as the hits before it left them and stores its new TATs only if
# every one of its rules allowed: the same as one call per hit, in order.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tats, changed, results = {}, {}, {}
local k, a = 0, 2
for h = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local out, news, all = {}, {}, true
  for i = 1, n do
    local key = KEYS[k + i]
    local limit, window, cost = tonumber(ARGV[a]), tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
    a = a + 3
    local interval = window / limit
    local tat = tats[key]
    if tat == nil then tat = tonumber(redis.call('GET', key) or now) end
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
    for i = 1, n do
      tats[KEYS[k + i]] = tonumber(tostring(news[i]))  -- as a later call would read it back
      changed[KEYS[k + i]] = true
    end
  end
  results[h] = out
  k = k + n
end
for key in pairs(changed) do
  redis.call('SET', key, tostring(tats[key]), 'PX', math.ceil(tats[key] - now) + 1)
end
return results
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
        # concurrent hits share one round trip; a flush of 500 hits is one script call of ~1 ms
        self._hits: GroupCommit[tuple[Limit, ...], Decision] = GroupCommit(self._hit_many, max_batch=500)
        self._fail = client.register_script(_FAIL)
        self._locked = client.register_script(_LOCKED)

    async def hit(self, *rules: Limit) -> Decision:
        if not rules:
            raise ValueError("a hit needs at least one rule")
        return await self._hits.submit(rules)

    async def _hit_many(self, hits: Sequence[tuple[Limit, ...]]) -> list[Decision]:
        keys: list[str] = []
        args: list[int] = [len(hits)]
        for rules in hits:
            args.append(len(rules))
            for r in rules:
                keys.append(f"{self._prefix}:rl:{r.key}")
                args += (r.limit, max(1, round(r.window_s * 1000)), r.cost)
        with unavailable("Redis does not answer"):
            answers = await self._hit(keys=keys, args=args)
        return [
            verdict(
                [
                    Decision(bool(allowed), r.limit, int(remaining), int(reset) / 1000.0, int(retry) / 1000.0)
                    for r, (allowed, remaining, reset, retry) in zip(rules, rows, strict=True)
                ]
            )
            for rules, rows in zip(hits, answers, strict=True)
        ]

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
