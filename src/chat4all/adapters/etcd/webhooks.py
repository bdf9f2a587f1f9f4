"""WebhookRegistry on etcd (production profile): webhook registrations are metadata (SPEC §3).

It rides on the shared ``EtcdGateway`` (the ``EtcdMetadataStore`` owns and starts it) — the
same client, key prefix and endpoint failover — rather than opening a second client. One key per webhook, under
its owner, so that "the webhooks of these senders" is one range per sender::

    webhooks/{owner}/{webhook_id}  -> Webhook as JSON (secret included: it signs the callbacks)

Writes that depend on what is there (create, disable) are etcd transactions guarded by the
key's revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat4all.adapters.etcd.gateway import (
    KV,
    MAX_TXN_OPS,
    EtcdGateway,
    HasGateway,
    gateway_of,
    kvs,
    mod_revision,
    put,
    range_op,
    revision_is,
    text,
)
from chat4all.domain.errors import Conflict
from chat4all.domain.webhooks import Webhook


class EtcdWebhookRegistry:
    def __init__(self, etcd: EtcdGateway | HasGateway) -> None:
        self._etcd = gateway_of(etcd)  # started and closed with the metadata store

    def _key(self, owner: str, webhook_id: str = "") -> str:
        # with no webhook_id: the owner's prefix, ending in "/"
        return self._etcd.key("webhooks", owner, webhook_id)

    async def create(self, webhook: Webhook) -> None:
        key = self._key(webhook.owner, webhook.webhook_id)
        created = await self._etcd.txn(
            compare=[revision_is(key, "CREATE", 0)], success=[put(key, webhook.model_dump_json())]
        )
        if not created["succeeded"]:
            raise Conflict("a webhook with this id exists")

    async def owned_by(self, owner: str) -> list[Webhook]:
        return (await self.for_owners([owner])).get(owner, [])

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        names = sorted(set(owners))
        found: dict[str, list[Webhook]] = {}
        for start in range(0, len(names), MAX_TXN_OPS):
            batch = names[start : start + MAX_TXN_OPS]
            ranges = [range_op(self._key(owner), prefix=True) for owner in batch]
            result = await self._etcd.txn(success=ranges)
            for owner, response in zip(batch, result["responses"], strict=True):
                hooks = sorted((_webhook(kv) for kv in kvs(response)), key=lambda w: (w.created_at, w.webhook_id))
                if hooks:
                    found[owner] = hooks
        return found

    async def get(self, owner: str, webhook_id: str) -> Webhook | None:
        kv = await self._etcd.get(self._key(owner, webhook_id))
        return _webhook(kv) if kv else None

    async def delete(self, owner: str, webhook_id: str) -> bool:
        return await self._etcd.delete(self._key(owner, webhook_id))

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        key = self._key(owner, webhook_id)
        while True:  # retried only if the key changed between the read and the write
            kv = await self._etcd.get(key)
            if kv is None:
                return False
            webhook = _webhook(kv)
            if not webhook.active:
                return False
            disabled = webhook.model_copy(update={"disabled_at": at, "disabled_reason": reason})
            written = await self._etcd.txn(
                compare=[revision_is(key, "MOD", mod_revision(kv))], success=[put(key, disabled.model_dump_json())]
            )
            if written["succeeded"]:
                return True


def _webhook(kv: KV) -> Webhook:
    return Webhook.model_validate_json(text(kv.get("value")))
