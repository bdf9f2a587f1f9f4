"""ConnectorConfigStore on etcd (production profile): connector configuration is metadata.

It rides on the ``EtcdMetadataStore``'s connection (same gateway client, prefix and failover),
one key per channel::

    connectors/{channel}  -> ConnectorConfig as JSON

Routers read the whole range every few seconds (one request) and rebuild what changed.
"""

from __future__ import annotations

from chat4all.adapters.etcd import (
    KV,
    EtcdMetadataStore,
    _keys,
    _put,
    _revision_is,
    _text,
)
from chat4all.domain.connectors import ConnectorConfig


class EtcdConnectorConfigStore:
    def __init__(self, etcd: EtcdMetadataStore) -> None:
        self._etcd = etcd  # started and closed by the runtime as the metadata store

    def _key(self, channel: str = "") -> str:
        # with no channel: the prefix of every connector, ending in "/"
        return self._etcd._key("connectors", channel)

    async def list_configs(self) -> list[ConnectorConfig]:
        result = await self._etcd._call("/v3/kv/range", _keys(self._key(), prefix=True))
        return sorted((_config(kv) for kv in result.get("kvs", [])), key=lambda c: c.channel)

    async def get_config(self, channel: str) -> ConnectorConfig | None:
        kv = await self._etcd._get(self._key(channel))
        return _config(kv) if kv else None

    async def put_config(self, config: ConnectorConfig) -> None:
        await self._etcd._call("/v3/kv/put", _put(self._key(config.channel), config.model_dump_json())["request_put"])

    async def add_config(self, config: ConnectorConfig) -> bool:
        key = self._key(config.channel)
        created = await self._etcd._txn(
            compare=[_revision_is(key, "CREATE", 0)], success=[_put(key, config.model_dump_json())]
        )
        return created["succeeded"]

    async def delete_config(self, channel: str) -> bool:
        result = await self._etcd._call("/v3/kv/deleterange", _keys(self._key(channel)))
        return int(result.get("deleted", 0)) > 0


def _config(kv: KV) -> ConnectorConfig:
    return ConnectorConfig.model_validate_json(_text(kv.get("value")))
