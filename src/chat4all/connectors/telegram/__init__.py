"""Telegram over the real Bot API (https://core.telegram.org/bots/api)."""

from chat4all.connectors.telegram.connector import TelegramConnector

__all__ = ["TelegramConnector"]
