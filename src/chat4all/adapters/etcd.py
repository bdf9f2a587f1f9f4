"""MetadataStore on etcd v3 (production profile): users, channel mappings, refresh-token families.

It speaks etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/lease/grant``; keys and values base64)
over one keep-alive ``httpx.AsyncClient``. Why not a client library: the maintained Python etcd
v3 clients either wrap grpc with a pinned old protobuf or are unmaintained, whereas the gateway is
part of etcd itself (3.4 and later), needs only httpx (already a dependency) and is async-native.

Keys, under ``prefix`` (default ``/chat4all``)::

    users/{username}                        -> User as JSON
    channels/{username}/{channel}           -> external_id
    channel-index/{channel}/{external_id}   -> username   (who holds an identity)
    refresh/{token_id}                      -> {family_id, username, expires_at, used}, leased
    refresh-family-revoked/{family_id}      -> "1", leased for the refresh-token lifetime
    refresh-families/{username}/{family_id} -> "1", leased like the family's newest token (password change)

Every check-then-write is one etcd transaction guarded by ``create_revision``/``mod_revision``
compares, so concurrent writers cannot both win. A missing key compares as revision 0.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from chat4all.domain.errors import Conflict, Unavailable, UsernameTaken
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.ids import utcnow
from chat4all.domain.models import User
from chat4all.ports import RefreshSpend

_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
_UNAVAILABLE_CODES = {4, 8, 14}
_READS = frozenset({"/v3/kv/range"})  # safe to ask again of another member  # gRPC DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE
# a lease never shorter than this: the key outlives the request that wrote it even when
# expires_at is (nearly) past by this machine's clock; expiry itself is checked on the JWT
_MIN_LEASE_S = 60

Op = dict[str, Any]
KV = dict[str, Any]


class EtcdError(Exception):
    """etcd refused a request for a reason other than being unreachable."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str | None) -> str:
    return base64.b64decode(b64 or "").decode()


def _used_at(token: dict[str, Any]) -> datetime | None:
    """When a spent token was spent (tokens spent before this was recorded: unknown)."""
    return datetime.fromisoformat(token["used_at"]) if token.get("used_at") else None


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


def _keys(key: str, *, prefix: bool = False) -> dict[str, str]:
    """Selects ``key``, or with ``prefix`` every key starting with it (it ends with '/': no carry)."""
    if not prefix:
        return {"key": _b64(key)}
    return {"key": _b64(key), "range_end": _b64(key[:-1] + chr(ord(key[-1]) + 1))}


def _range(key: str) -> Op:
    return {"request_range": _keys(key)}


def _put(key: str, value: str, **extra: Any) -> Op:
    return {"request_put": {"key": _b64(key), "value": _b64(value), **extra}}


def _delete(key: str) -> Op:
    return {"request_delete_range": {"key": _b64(key)}}


def _revision_is(key: str, target: str, revision: int) -> Op:
    """A compare: ``target`` (CREATE or MOD) revision of ``key`` equals ``revision`` (0 = absent)."""
    return {"key": _b64(key), "target": target, "result": "EQUAL", f"{target.lower()}_revision": revision}


def _kvs(response: Op) -> list[KV]:
    return response.get("response_range", {}).get("kvs", [])


def _mod(kv: KV | None) -> int:
    return int(kv["mod_revision"]) if kv else 0


class EtcdMetadataStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "/chat4all",
        refresh_ttl_s: int = 30 * 24 * 3600,
        timeout_s: float = 5.0,
    ) -> None:
        scheme, sep, hosts = url.partition("://")
        if not sep or scheme not in ("etcd", "etcds") or not hosts.strip(","):
            raise ValueError(f"not an etcd URL: {url!r} (expected etcd://host:port[,host:port...])")
        http = "https" if scheme == "etcds" else "http"
        self._endpoints = [f"{http}://{h.strip().rstrip('/')}" for h in hosts.split(",") if h.strip()]
        self._current = 0  # the endpoint that answered last
        self.prefix = prefix.rstrip("/")
        self._refresh_ttl_s = refresh_ttl_s
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
        await self._call("/v3/kv/range", _keys(self._key("ping")) | {"count_only": True})

    async def delete_all(self) -> None:
        """Deletes every key under the prefix (tests; retiring a deployment's namespace)."""
        await self._call("/v3/kv/deleterange", _keys(self.prefix + "/", prefix=True))

    # users

    async def create_user(self, user: User) -> None:
        key = self._key("users", user.username)
        created = await self._txn(
            compare=[_revision_is(key, "CREATE", 0)], success=[_put(key, user.model_dump_json())]
        )
        if not created["succeeded"]:
            raise UsernameTaken(f"the username {user.username!r} is taken")

    async def get_user(self, username: str) -> User | None:
        kv = await self._get(self._key("users", username))
        return User.model_validate_json(_text(kv.get("value"))) if kv else None

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]:
        names = sorted(set(usernames))
        found: set[str] = set()
        for start in range(0, len(names), _MAX_TXN_OPS):
            batch = names[start : start + _MAX_TXN_OPS]
            result = await self._txn(success=[_range(self._key("users", n)) for n in batch])
            found.update(n for n, r in zip(batch, result["responses"], strict=True) if _kvs(r))
        return found

    # channel mappings

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        key = self._key("channels", username, channel)
        index_key = self._key("channel-index", channel, external_id)
        while True:  # retried only when a concurrent writer changed one of the two keys meanwhile
            read = await self._txn(success=[_range(key), _range(index_key)])
            mapping, owner = (next(iter(_kvs(r)), None) for r in read["responses"])
            if owner and _text(owner.get("value")) != username:
                raise Conflict(f"this {channel} identity is already mapped to another user")
            ops = [_put(key, external_id), _put(index_key, username)]
            old_id = _text(mapping.get("value")) if mapping else None
            if old_id is not None and old_id != external_id:
                ops.append(_delete(self._key("channel-index", channel, old_id)))
            compare = [_revision_is(key, "MOD", _mod(mapping)), _revision_is(index_key, "MOD", _mod(owner))]
            if (await self._txn(compare=compare, success=ops))["succeeded"]:
                return

    async def delete_channel(self, username: str, channel: str) -> bool:
        key = self._key("channels", username, channel)
        while True:
            mapping = await self._get(key)
            if mapping is None:
                return False
            index_key = self._key("channel-index", channel, _text(mapping.get("value")))
            compare = [_revision_is(key, "MOD", _mod(mapping))]
            if (await self._txn(compare=compare, success=[_delete(key), _delete(index_key)]))["succeeded"]:
                return True

    async def get_channels(self, username: str) -> dict[str, str]:
        prefix = self._key("channels", username) + "/"
        result = await self._call("/v3/kv/range", _keys(prefix, prefix=True))
        return {_text(kv["key"])[len(prefix) :]: _text(kv.get("value")) for kv in result.get("kvs", [])}

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None:
        kv = await self._get(self._key("channel-index", channel, external_id))
        return _text(kv.get("value")) if kv else None

    # claims of channel identities: on a lease, so etcd forgets them when they expire

    async def add_channel_claim(self, claim: ChannelClaim) -> None:
        key = self._key("channel-claims", claim.channel, claim.external_id, claim.username)
        value = _json({"code": claim.code, "expires_at": claim.expires_at.isoformat()})
        await self._put_leased(key, value, ttl_s=(claim.expires_at - utcnow()).total_seconds())

    async def channel_claims(self, channel: str, external_id: str) -> list[ChannelClaim]:
        prefix = self._key("channel-claims", channel, external_id) + "/"
        result = await self._call("/v3/kv/range", _keys(prefix, prefix=True))
        claims = []
        for kv in result.get("kvs", []):
            value = orjson.loads(_text(kv.get("value")))
            claims.append(
                ChannelClaim(
                    username=_text(kv["key"])[len(prefix) :],
                    channel=channel,
                    external_id=external_id,
                    code=value["code"],
                    expires_at=datetime.fromisoformat(value["expires_at"]),
                )
            )
        return claims

    async def drop_channel_claims(self, channel: str, external_id: str) -> None:
        prefix = self._key("channel-claims", channel, external_id) + "/"
        await self._call("/v3/kv/deleterange", _keys(prefix, prefix=True))

    # refresh-token families

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        token = {"family_id": family_id, "username": username, "expires_at": expires_at.isoformat(), "used": False}
        ttl_s = (expires_at - utcnow()).total_seconds()
        lease = await self._call("/v3/lease/grant", {"TTL": max(_MIN_LEASE_S, math.ceil(ttl_s))})
        await self._txn(
            success=[
                _put(self._key("refresh", token_id), _json(token), lease=lease["ID"]),
                _put(self._key("refresh-families", username, family_id), "1", lease=lease["ID"]),
            ]
        )

    async def spend_refresh_token(self, token_id: str) -> RefreshSpend:
        key = self._key("refresh", token_id)
        kv = await self._get(key)
        if kv is None:
            return RefreshSpend("unknown")
        token = orjson.loads(_text(kv.get("value")))
        username, family_id = token["username"], token["family_id"]
        revoked_key = self._key("refresh-family-revoked", family_id)
        if token["used"]:
            revoked = await self._get(revoked_key)
            return RefreshSpend("revoked" if revoked else "reused", username, family_id, _used_at(token))
        # one transaction: still unspent and the family still not revoked -> mark it used
        now = utcnow()
        spent = await self._txn(
            compare=[_revision_is(key, "MOD", _mod(kv)), _revision_is(revoked_key, "CREATE", 0)],
            # keeps the token's lease
            success=[_put(key, _json(token | {"used": True, "used_at": now.isoformat()}), ignore_lease=True)],
            failure=[_range(key), _range(revoked_key)],
        )
        if spent["succeeded"]:
            return RefreshSpend("ok", username, family_id, now)
        still_there, revoked_now = (_kvs(r) for r in spent["responses"])
        if not still_there:  # its lease ran out meanwhile
            return RefreshSpend("unknown")
        token = orjson.loads(_text(still_there[0].get("value")))
        return RefreshSpend("revoked" if revoked_now else "reused", username, family_id, _used_at(token))

    async def revoke_refresh_family(self, family_id: str) -> None:
        await self._put_leased(self._key("refresh-family-revoked", family_id), "1", ttl_s=self._refresh_ttl_s)

    async def refresh_family_revoked(self, family_id: str) -> bool:
        return await self._get(self._key("refresh-family-revoked", family_id)) is not None

    async def revoke_user_refresh_families(self, username: str) -> None:
        prefix = self._key("refresh-families", username) + "/"
        result = await self._call("/v3/kv/range", _keys(prefix, prefix=True) | {"keys_only": True})
        families = [_text(kv["key"])[len(prefix) :] for kv in result.get("kvs", [])]
        if not families:
            return
        lease = await self._call("/v3/lease/grant", {"TTL": max(_MIN_LEASE_S, self._refresh_ttl_s)})
        for start in range(0, len(families), _MAX_TXN_OPS):
            batch = families[start : start + _MAX_TXN_OPS]
            await self._txn(
                success=[_put(self._key("refresh-family-revoked", f), "1", lease=lease["ID"]) for f in batch]
            )

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        key = self._key("users", username)
        while True:  # retried only when a concurrent writer changed the user meanwhile
            kv = await self._get(key)
            if kv is None:
                return
            user = User.model_validate_json(_text(kv.get("value"))).model_copy(update={"password_hash": password_hash})
            compare = [_revision_is(key, "MOD", _mod(kv))]
            if (await self._txn(compare=compare, success=[_put(key, user.model_dump_json())]))["succeeded"]:
                return

    # the wire

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    async def _get(self, key: str) -> KV | None:
        result = await self._call("/v3/kv/range", _keys(key))
        return next(iter(result.get("kvs", [])), None)

    async def _txn(self, *, compare: Sequence[Op] = (), success: Sequence[Op], failure: Sequence[Op] = ()) -> Op:
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        result = await self._call("/v3/kv/txn", body)
        return {"succeeded": bool(result.get("succeeded")), "responses": result.get("responses", [])}

    async def _put_leased(self, key: str, value: str, *, ttl_s: float) -> None:
        """Puts ``key`` on a new lease, so that etcd deletes it after ``ttl_s`` seconds."""
        lease = await self._call("/v3/lease/grant", {"TTL": max(_MIN_LEASE_S, math.ceil(ttl_s))})
        await self._call("/v3/kv/put", _put(key, value, lease=lease["ID"])["request_put"])

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to the endpoint that answered last, moving on to the next on connection errors.

        A member that dies mid-request (a kept-alive connection reset) is left too: a read is
        asked again of the next member at once; a write, which may have been applied, fails
        with Unavailable, and the next call goes to the next member."""
        if self._client is None:
            raise RuntimeError("EtcdMetadataStore.start() was not called")
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
