"""etcd (production profile's metadata): one gateway client, one store module per port.

``gateway.py`` is the v3 JSON gateway client and its request helpers; ``metadata.py`` the
MetadataStore (which owns the gateway), ``connector_configs.py`` the ConnectorConfigStore and
``webhooks.py`` the WebhookRegistry, both riding on that gateway.
"""

from chat4all.adapters.etcd.connector_configs import EtcdConnectorConfigStore
from chat4all.adapters.etcd.gateway import EtcdError, EtcdGateway
from chat4all.adapters.etcd.metadata import EtcdMetadataStore
from chat4all.adapters.etcd.webhooks import EtcdWebhookRegistry

__all__ = ["EtcdConnectorConfigStore", "EtcdError", "EtcdGateway", "EtcdMetadataStore", "EtcdWebhookRegistry"]
