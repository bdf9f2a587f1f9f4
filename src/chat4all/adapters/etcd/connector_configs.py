"""ConnectorConfigStore on etcd (production profile): connector configuration is metadata.

It rides on the shared ``EtcdGateway`` (same client, prefix and failover; the
``EtcdMetadataStore`` owns and starts it), one key per channel::

    connectors/{channel}  -> ConnectorConfig as JSON

Routers read the whole range every few seconds (one request) and rebuild what changed.
"""

from __future__ import annotations

from chat4all.adapters.etcd.gateway import (
    KV,
    EtcdGateway,
    HasGateway,
    gateway_of,
    put,
    revision_is,
    text,
)
from chat4all.domain.connectors import ConnectorConfig


class EtcdConnectorConfigStore:
    def __init__(self, etcd: EtcdGateway | HasGateway) -> None:
        self._etcd = gateway_of(etcd)  # started and closed with the metadata store

    def _key(self, channel: str = "") -> str:
        # with no channel: the prefix of every connector, ending in "/"
        return self._etcd.key("connectors", channel)

    async def list_configs(self) -> list[ConnectorConfig]:
        return sorted((_config(kv) for kv in await self._etcd.range(self._key())), key=lambda c: c.channel)

    async def get_config(self, channel: str) -> ConnectorConfig | None:
        kv = await self._etcd.get(self._key(channel))
        return _config(kv) if kv else None

    async def put_config(self, config: ConnectorConfig) -> None:
        await self._etcd.put(self._key(config.channel), config.model_dump_json())

    async def add_config(self, config: ConnectorConfig) -> bool:
        key = self._key(config.channel)
        created = await self._etcd.txn(
            compare=[revision_is(key, "CREATE", 0)], success=[put(key, config.model_dump_json())]
        )
        return created["succeeded"]

    async def delete_config(self, channel: str) -> bool:
        return await self._etcd.delete(self._key(channel))


def _config(kv: KV) -> ConnectorConfig:
    return ConnectorConfig.model_validate_json(text(kv.get("value")))
