"""The etcd v3 JSON gateway client every etcd store shares: one connection, key prefix and failover.

It speaks etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/lease/grant``; keys and values base64)
over one keep-alive ``httpx.AsyncClient``. Why not a client library: the maintained Python etcd
v3 clients either wrap grpc with a pinned old protobuf or are unmaintained, whereas the gateway is
part of etcd itself (3.4 and later), needs only httpx (already a dependency) and is async-native.

The helpers below build the gateway's request bodies (``put``, ``range_op``, ``revision_is``...)
and read its answers (``kvs``, ``text``, ``mod_revision``); the stores compose them into
transactions. A missing key compares as revision 0.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import orjson

from chat4all.domain.errors import Unavailable

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
# gRPC DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE
_UNAVAILABLE_CODES = {4, 8, 14}
_READS = frozenset({"/v3/kv/range"})  # safe to ask again of another member
# a lease never shorter than this: the key outlives the request that wrote it even when
# its expiry is (nearly) past by this machine's clock
MIN_LEASE_S = 60

Op = dict[str, Any]
KV = dict[str, Any]


class EtcdError(Exception):
    """etcd refused a request for a reason other than being unreachable."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def text(b64_value: str | None) -> str:
    return base64.b64decode(b64_value or "").decode()


def json_text(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


def keys(key: str, *, prefix: bool = False) -> dict[str, str]:
    """Selects ``key``, or with ``prefix`` every key starting with it (it ends with '/': no carry)."""
    if not prefix:
        return {"key": b64(key)}
    return {"key": b64(key), "range_end": b64(key[:-1] + chr(ord(key[-1]) + 1))}


def range_op(key: str, *, prefix: bool = False) -> Op:
    return {"request_range": keys(key, prefix=prefix)}


def put(key: str, value: str, **extra: Any) -> Op:
    return {"request_put": {"key": b64(key), "value": b64(value), **extra}}


def delete(key: str) -> Op:
    return {"request_delete_range": {"key": b64(key)}}


def revision_is(key: str, target: str, revision: int) -> Op:
    """A compare: ``target`` (CREATE or MOD) revision of ``key`` equals ``revision`` (0 = absent)."""
    return {"key": b64(key), "target": target, "result": "EQUAL", f"{target.lower()}_revision": revision}


def kvs(response: Op) -> list[KV]:
    return response.get("response_range", {}).get("kvs", [])


def mod_revision(kv: KV | None) -> int:
    return int(kv["mod_revision"]) if kv else 0


class EtcdGateway:
    """One etcd cluster's gateway, under a key prefix; started and closed by its owner."""

    def __init__(self, url: str, *, prefix: str = "/chat4all", timeout_s: float = 5.0) -> None:
        scheme, sep, hosts = url.partition("://")
        if not sep or scheme not in ("etcd", "etcds") or not hosts.strip(","):
            raise ValueError(f"not an etcd URL: {url!r} (expected etcd://host:port[,host:port...])")
        http = "https" if scheme == "etcds" else "http"
        self._endpoints = [f"{http}://{h.strip().rstrip('/')}" for h in hosts.split(",") if h.strip()]
        self._current = 0  # the endpoint that answered last
        self.prefix = prefix.rstrip("/")
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        """Raises Unavailable unless an endpoint answers a (quorum) read."""
        await self.call("/v3/kv/range", keys(self.key("ping")) | {"count_only": True})

    async def delete_all(self) -> None:
        """Deletes every key under the prefix (tests; retiring a deployment's namespace)."""
        await self.call("/v3/kv/deleterange", keys(self.prefix + "/", prefix=True))

    def key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    async def get(self, key: str) -> KV | None:
        result = await self.call("/v3/kv/range", keys(key))
        return next(iter(result.get("kvs", [])), None)

    async def range(self, prefix: str, *, keys_only: bool = False) -> list[KV]:
        """Every key under ``prefix`` (which ends with '/'), in key order."""
        body = keys(prefix, prefix=True) | ({"keys_only": True} if keys_only else {})
        return list((await self.call("/v3/kv/range", body)).get("kvs", []))

    async def put(self, key: str, value: str) -> None:
        await self.call("/v3/kv/put", put(key, value)["request_put"])

    async def delete(self, key: str) -> bool:
        """Deletes ``key``; True if it was there."""
        result = await self.call("/v3/kv/deleterange", keys(key))
        return int(result.get("deleted", 0)) > 0

    async def txn(self, *, compare: Sequence[Op] = (), success: Sequence[Op], failure: Sequence[Op] = ()) -> Op:
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        result = await self.call("/v3/kv/txn", body)
        return {"succeeded": bool(result.get("succeeded")), "responses": result.get("responses", [])}

    async def grant_lease(self, ttl_s: float) -> int | str:
        """A new lease of at least ``MIN_LEASE_S``; its id for ``put(..., lease=id)``."""
        lease = await self.call("/v3/lease/grant", {"TTL": max(MIN_LEASE_S, math.ceil(ttl_s))})
        lease_id: int | str = lease["ID"]
        return lease_id

    async def put_leased(self, key: str, value: str, *, ttl_s: float) -> None:
        """Puts ``key`` on a new lease, so that etcd deletes it after ``ttl_s`` seconds."""
        lease = await self.grant_lease(ttl_s)
        await self.call("/v3/kv/put", put(key, value, lease=lease)["request_put"])

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to the endpoint that answered last, moving on to the next on connection errors.

        A member that dies mid-request (a kept-alive connection reset) is left too: a read is
        asked again of the next member at once; a write, which may have been applied, fails
        with Unavailable, and the next call goes to the next member."""
        if self._client is None:
            raise RuntimeError("EtcdGateway.start() was not called")
        content = orjson.dumps(body)
        for attempt in range(len(self._endpoints)):
            index = (self._current + attempt) % len(self._endpoints)
            try:
                response = await self._client.post(self._endpoints[index] + path, content=content)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                continue  # nothing was sent: safe to try the next endpoint
            except httpx.HTTPError as exc:
                self._current = (index + 1) % len(self._endpoints)
                if path in _READS:
                    continue
                raise Unavailable(f"etcd did not answer {path}: {type(exc).__name__}") from exc
            self._current = index
            try:
                data: dict[str, Any] = response.json()
            except ValueError as exc:
                raise Unavailable(f"etcd answered {path} with HTTP {response.status_code}") from exc
            if "error" in data or response.status_code != 200:
                message = f"etcd refused {path}: {data.get('message') or data.get('error')}"
                if data.get("code") in _UNAVAILABLE_CODES or response.status_code >= 500:
                    raise Unavailable(message)
                raise EtcdError(message)
            return data
        raise Unavailable(f"no etcd endpoint reachable ({', '.join(self._endpoints)})")


class HasGateway(Protocol):
    gateway: EtcdGateway


def gateway_of(etcd: EtcdGateway | HasGateway) -> EtcdGateway:
    """The gateway itself, or the one a store (the metadata store) owns and starts."""
    return etcd if isinstance(etcd, EtcdGateway) else etcd.gateway
