"""MetadataStore on etcd v3 (production profile): users, channel mappings, refresh-token families.

It owns the ``EtcdGateway`` (``gateway.py``) that the other etcd stores of the process share.

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

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from chat4all.adapters.etcd.gateway import (
    MAX_TXN_OPS,
    EtcdGateway,
    delete,
    json_text,
    keys,
    kvs,
    mod_revision,
    put,
    range_op,
    revision_is,
    text,
)
from chat4all.domain.errors import Conflict, UsernameTaken
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.ids import utcnow
from chat4all.domain.models import User
from chat4all.ports import RefreshSpend


def _used_at(token: dict[str, Any]) -> datetime | None:
    """When a spent token was spent (tokens spent before this was recorded: unknown)."""
    return datetime.fromisoformat(token["used_at"]) if token.get("used_at") else None


class EtcdMetadataStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "/chat4all",
        refresh_ttl_s: int = 30 * 24 * 3600,
        timeout_s: float = 5.0,
    ) -> None:
        self.gateway = EtcdGateway(url, prefix=prefix, timeout_s=timeout_s)
        self.prefix = self.gateway.prefix
        self._refresh_ttl_s = refresh_ttl_s

    async def start(self) -> None:
        await self.gateway.start()

    async def close(self) -> None:
        await self.gateway.close()

    async def ping(self) -> None:
        """Raises Unavailable unless an endpoint answers a (quorum) read."""
        await self.gateway.ping()

    async def delete_all(self) -> None:
        """Deletes every key under the prefix (tests; retiring a deployment's namespace)."""
        await self.gateway.delete_all()

    # users

    async def create_user(self, user: User) -> None:
        key = self._key("users", user.username)
        created = await self.gateway.txn(
            compare=[revision_is(key, "CREATE", 0)], success=[put(key, user.model_dump_json())]
        )
        if not created["succeeded"]:
            raise UsernameTaken(f"the username {user.username!r} is taken")

    async def get_user(self, username: str) -> User | None:
        kv = await self.gateway.get(self._key("users", username))
        return User.model_validate_json(text(kv.get("value"))) if kv else None

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]:
        return await self._existing("users", usernames)

    async def _existing(self, kind: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` have a key under ``kind``: one transaction of reads per MAX_TXN_OPS."""
        ordered = sorted(set(names))
        found: set[str] = set()
        for start in range(0, len(ordered), MAX_TXN_OPS):
            batch = ordered[start : start + MAX_TXN_OPS]
            result = await self.gateway.txn(success=[range_op(self._key(kind, n)) for n in batch])
            found.update(n for n, r in zip(batch, result["responses"], strict=True) if kvs(r))
        return found

    # channel mappings

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        key = self._key("channels", username, channel)
        index_key = self._key("channel-index", channel, external_id)
        while True:  # retried only when a concurrent writer changed one of the two keys meanwhile
            read = await self.gateway.txn(success=[range_op(key), range_op(index_key)])
            mapping, owner = (next(iter(kvs(r)), None) for r in read["responses"])
            if owner and text(owner.get("value")) != username:
                raise Conflict(f"this {channel} identity is already mapped to another user")
            ops = [put(key, external_id), put(index_key, username)]
            old_id = text(mapping.get("value")) if mapping else None
            if old_id is not None and old_id != external_id:
                ops.append(delete(self._key("channel-index", channel, old_id)))
            compare = [revision_is(key, "MOD", mod_revision(mapping)), revision_is(index_key, "MOD", mod_revision(owner))]
            if (await self.gateway.txn(compare=compare, success=ops))["succeeded"]:
                return

    async def delete_channel(self, username: str, channel: str) -> bool:
        key = self._key("channels", username, channel)
        while True:
            mapping = await self.gateway.get(key)
            if mapping is None:
                return False
            index_key = self._key("channel-index", channel, text(mapping.get("value")))
            compare = [revision_is(key, "MOD", mod_revision(mapping))]
            if (await self.gateway.txn(compare=compare, success=[delete(key), delete(index_key)]))["succeeded"]:
                return True

    async def get_channels(self, username: str) -> dict[str, str]:
        prefix = self._key("channels", username) + "/"
        return {text(kv["key"])[len(prefix) :]: text(kv.get("value")) for kv in await self.gateway.range(prefix)}

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None:
        kv = await self.gateway.get(self._key("channel-index", channel, external_id))
        return text(kv.get("value")) if kv else None

    # claims of channel identities: on a lease, so etcd forgets them when they expire

    async def add_channel_claim(self, claim: ChannelClaim) -> None:
        key = self._key("channel-claims", claim.channel, claim.external_id, claim.username)
        value = json_text({"code": claim.code, "expires_at": claim.expires_at.isoformat()})
        await self.gateway.put_leased(key, value, ttl_s=(claim.expires_at - utcnow()).total_seconds())

    async def channel_claims(self, channel: str, external_id: str) -> list[ChannelClaim]:
        prefix = self._key("channel-claims", channel, external_id) + "/"
        claims = []
        for kv in await self.gateway.range(prefix):
            value = orjson.loads(text(kv.get("value")))
            claims.append(
                ChannelClaim(
                    username=text(kv["key"])[len(prefix) :],
                    channel=channel,
                    external_id=external_id,
                    code=value["code"],
                    expires_at=datetime.fromisoformat(value["expires_at"]),
                )
            )
        return claims

    async def drop_channel_claims(self, channel: str, external_id: str) -> None:
        prefix = self._key("channel-claims", channel, external_id) + "/"
        await self.gateway.call("/v3/kv/deleterange", keys(prefix, prefix=True))

    # refresh-token families

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        token = {"family_id": family_id, "username": username, "expires_at": expires_at.isoformat(), "used": False}
        ttl_s = (expires_at - utcnow()).total_seconds()
        lease = await self.gateway.grant_lease(ttl_s)
        await self.gateway.txn(
            success=[
                put(self._key("refresh", token_id), json_text(token), lease=lease),
                put(self._key("refresh-families", username, family_id), "1", lease=lease),
            ]
        )

    async def spend_refresh_token(self, token_id: str) -> RefreshSpend:
        key = self._key("refresh", token_id)
        kv = await self.gateway.get(key)
        if kv is None:
            return RefreshSpend("unknown")
        token = orjson.loads(text(kv.get("value")))
        username, family_id = token["username"], token["family_id"]
        revoked_key = self._key("refresh-family-revoked", family_id)
        if token["used"]:
            revoked = await self.gateway.get(revoked_key)
            return RefreshSpend("revoked" if revoked else "reused", username, family_id, _used_at(token))
        # one transaction: still unspent and the family still not revoked -> mark it used
        now = utcnow()
        spent = await self.gateway.txn(
            compare=[revision_is(key, "MOD", mod_revision(kv)), revision_is(revoked_key, "CREATE", 0)],
            # keeps the token's lease
            success=[put(key, json_text(token | {"used": True, "used_at": now.isoformat()}), ignore_lease=True)],
            failure=[range_op(key), range_op(revoked_key)],
        )
        if spent["succeeded"]:
            return RefreshSpend("ok", username, family_id, now)
        still_there, revoked_now = (kvs(r) for r in spent["responses"])
        if not still_there:  # its lease ran out meanwhile
            return RefreshSpend("unknown")
        token = orjson.loads(text(still_there[0].get("value")))
        return RefreshSpend("revoked" if revoked_now else "reused", username, family_id, _used_at(token))

    async def revoke_refresh_family(self, family_id: str) -> None:
        await self.gateway.put_leased(self._key("refresh-family-revoked", family_id), "1", ttl_s=self._refresh_ttl_s)

    async def revoked_refresh_families(self, family_ids: Sequence[str]) -> set[str]:
        return await self._existing("refresh-family-revoked", family_ids)

    async def revoke_user_refresh_families(self, username: str) -> None:
        prefix = self._key("refresh-families", username) + "/"
        families = [text(kv["key"])[len(prefix) :] for kv in await self.gateway.range(prefix, keys_only=True)]
        if not families:
            return
        lease = await self.gateway.grant_lease(self._refresh_ttl_s)
        for start in range(0, len(families), MAX_TXN_OPS):
            batch = families[start : start + MAX_TXN_OPS]
            await self.gateway.txn(
                success=[put(self._key("refresh-family-revoked", f), "1", lease=lease) for f in batch]
            )

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        key = self._key("users", username)
        while True:  # retried only when a concurrent writer changed the user meanwhile
            kv = await self.gateway.get(key)
            if kv is None:
                return
            user = User.model_validate_json(text(kv.get("value"))).model_copy(update={"password_hash": password_hash})
            compare = [revision_is(key, "MOD", mod_revision(kv))]
            if (await self.gateway.txn(compare=compare, success=[put(key, user.model_dump_json())]))["succeeded"]:
                return

    def _key(self, *parts: str) -> str:
        return self.gateway.key(*parts)
