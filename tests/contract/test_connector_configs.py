"""ConnectorConfigStore contract, on every metadata store (SQLite, PostgreSQL, etcd) (R9.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chat4all.adapters.etcd import EtcdConnectorConfigStore, EtcdMetadataStore
from chat4all.adapters.sql.connector_configs import SqlConnectorConfigStore
from chat4all.domain.connectors import ConnectorConfig, ConnectorLimits
from chat4all.ports import ConnectorConfigStore
from tests.fakes.connectors import FakeConnectorConfigStore
from tests.fakes.users import FakeMetadataStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 123_000, tzinfo=UTC)


@pytest.fixture
def configs(metadata_store: Any) -> ConnectorConfigStore:
    if isinstance(metadata_store, FakeMetadataStore):
        return FakeConnectorConfigStore()
    if isinstance(metadata_store, EtcdMetadataStore):
        return EtcdConnectorConfigStore(metadata_store)
    return SqlConnectorConfigStore(metadata_store._db)


def telegram(**changes: Any) -> ConnectorConfig:
    base = {
        "channel": "telegram",
        "options": {"token": "123:abc", "base_url": "http://127.0.0.1:1", "nested": {"a": [1, 2.5, None]}},
        "limits": ConnectorLimits(max_in_flight=4, send_timeout_s=2.5),
        "updated_at": T0,
    }
    return ConnectorConfig(**(base | changes))


async def test_put_get_list_and_delete(configs: ConnectorConfigStore) -> None:
    assert await configs.list_configs() == [] and await configs.get_config("telegram") is None
    await configs.put_config(telegram())
    await configs.put_config(ConnectorConfig(channel="acme", plugin="whatsapp", enabled=False, updated_at=T0))
    assert await configs.get_config("telegram") == telegram()
    assert [c.channel for c in await configs.list_configs()] == ["acme", "telegram"]
    changed = telegram(enabled=False, options={"token": "456:def"}, updated_at=T0 + timedelta(seconds=1))
    await configs.put_config(changed)
    assert await configs.get_config("telegram") == changed
    assert await configs.delete_config("telegram") is True
    assert await configs.delete_config("telegram") is False
    assert [c.channel for c in await configs.list_configs()] == ["acme"]


async def test_add_only_writes_a_channel_that_has_no_configuration(configs: ConnectorConfigStore) -> None:
    assert await configs.add_config(telegram()) is True
    assert await configs.add_config(telegram(enabled=False)) is False  # a restart never overwrites an operator's change
    assert (await configs.get_config("telegram")).enabled is True


def test_the_configuration_says_when_a_change_needs_a_new_connector() -> None:
    assert telegram().same_setup(telegram(updated_at=T0 + timedelta(hours=1)))
    assert not telegram().same_setup(telegram(options={"token": "other"}))
    assert not telegram().same_setup(None)
    assert telegram().plugin_name == "telegram" and telegram(plugin="acme").plugin_name == "acme"
    with pytest.raises(ValueError):
        ConnectorConfig(channel="Not A Channel", updated_at=T0)
