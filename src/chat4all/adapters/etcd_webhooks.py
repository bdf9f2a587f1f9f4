"""WebhookRegistry on etcd (production profile): webhook registrations are metadata (SPEC §3).

It rides on the ``EtcdMetadataStore``'s connection — the same v3 JSON gateway client, key
prefix and endpoint failover — rather than opening a second client. One key per webhook, under
its owner, so that "the webhooks of these senders" is one range per sender::

    webhooks/{owner}/{webhook_id}  -> Webhook as JSON (secret included: it signs the callbacks)

Writes that depend on what is there (create, disable) are etcd transactions guarded by the
key's revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat4all.adapters.etcd import (
    _MAX_TXN_OPS,
    KV,
    EtcdMetadataStore,
    _keys,
    _kvs,
    _mod,
    _put,
    _revision_is,
    _text,
)
from chat4all.domain.errors import Conflict
from chat4all.domain.webhooks import Webhook


class EtcdWebhookRegistry:
    def __init__(self, etcd: EtcdMetadataStore) -> None:
        self._etcd = etcd  # started and closed by the runtime as the metadata store

    def _key(self, owner: str, webhook_id: str = "") -> str:
        # with no webhook_id: the owner's prefix, ending in "/"
        return self._etcd._key("webhooks", owner, webhook_id)

    async def create(self, webhook: Webhook) -> None:
        key = self._key(webhook.owner, webhook.webhook_id)
        created = await self._etcd._txn(
            compare=[_revision_is(key, "CREATE", 0)], success=[_put(key, webhook.model_dump_json())]
        )
        if not created["succeeded"]:
            raise Conflict("a webhook with this id exists")

    async def owned_by(self, owner: str) -> list[Webhook]:
        return (await self.for_owners([owner])).get(owner, [])

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        names = sorted(set(owners))
        found: dict[str, list[Webhook]] = {}
        for start in range(0, len(names), _MAX_TXN_OPS):
            batch = names[start : start + _MAX_TXN_OPS]
            ranges = [{"request_range": _keys(self._key(owner), prefix=True)} for owner in batch]
            result = await self._etcd._txn(success=ranges)
            for owner, response in zip(batch, result["responses"], strict=True):
                hooks = sorted((_webhook(kv) for kv in _kvs(response)), key=lambda w: (w.created_at, w.webhook_id))
                if hooks:
                    found[owner] = hooks
        return found

    async def get(self, owner: str, webhook_id: str) -> Webhook | None:
        kv = await self._etcd._get(self._key(owner, webhook_id))
        return _webhook(kv) if kv else None

    async def delete(self, owner: str, webhook_id: str) -> bool:
        result = await self._etcd._call("/v3/kv/deleterange", _keys(self._key(owner, webhook_id)))
        return int(result.get("deleted", 0)) > 0

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        key = self._key(owner, webhook_id)
        while True:  # retried only if the key changed between the read and the write
            kv = await self._etcd._get(key)
            if kv is None:
                return False
            webhook = _webhook(kv)
            if not webhook.active:
                return False
            disabled = webhook.model_copy(update={"disabled_at": at, "disabled_reason": reason})
            written = await self._etcd._txn(
                compare=[_revision_is(key, "MOD", _mod(kv))], success=[_put(key, disabled.model_dump_json())]
            )
            if written["succeeded"]:
                return True


def _webhook(kv: KV) -> Webhook:
    return Webhook.model_validate_json(_text(kv.get("value")))
