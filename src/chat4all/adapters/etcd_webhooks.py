"""Kept for the composition root's import until it names ``chat4all.adapters.etcd``."""

from chat4all.adapters.etcd import EtcdWebhookRegistry

__all__ = ["EtcdWebhookRegistry"]
