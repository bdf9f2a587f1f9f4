"""Connectors in memory: their configuration, the external deliveries waiting for them (on a
``FakeMessageStore``'s delivery rows) and the provider ids of bridged messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.models import INTERNAL, Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ClaimedDelivery, ConnectorLink, DeliveryKey
from tests.fakes.messaging import DeliveryRow, FakeMessageStore

SENT, FAILED = DeliveryStatus.SENT, DeliveryStatus.FAILED


class FakeConnectorConfigStore:
    def __init__(self) -> None:
        self._configs: dict[str, ConnectorConfig] = {}

    async def list_configs(self) -> list[ConnectorConfig]:
        return [self._configs[c] for c in sorted(self._configs)]

    async def get_config(self, channel: str) -> ConnectorConfig | None:
        return self._configs.get(channel)

    async def put_config(self, config: ConnectorConfig) -> None:
        self._configs[config.channel] = config

    async def add_config(self, config: ConnectorConfig) -> bool:
        if config.channel in self._configs:
            return False
        self._configs[config.channel] = config
        return True

    async def delete_config(self, channel: str) -> bool:
        return self._configs.pop(channel, None) is not None


class FakeConnectorLinks:
    def __init__(self) -> None:
        self.links: dict[tuple[str, str, str], ConnectorLink] = {}

    def add(self, link: ConnectorLink) -> None:
        self.links.setdefault((link.channel, link.external_id, link.provider_message_id), link)

    async def find(self, channel: str, external_id: str, provider_message_id: str) -> ConnectorLink | None:
        return self.links.get((channel, external_id, provider_message_id))

    async def latest(self, channel: str, external_id: str) -> ConnectorLink | None:
        mine = [link for link in self.links.values() if (link.channel, link.external_id) == (channel, external_id)]
        return max(mine, key=lambda link: (link.created_at, link.provider_message_id), default=None)


class FakeDeliveryQueue:
    def __init__(self, messages: FakeMessageStore, links: FakeConnectorLinks | None = None) -> None:
        self._messages = messages
        self.links = links or FakeConnectorLinks()

    def _pending(self) -> list[DeliveryRow]:
        return [r for r in self._messages.rows.values() if r.status is SENT and r.next_attempt_at is not None]

    async def due_channels(self, *, now: datetime) -> set[str]:
        return {r.channel for r in self._pending() if r.channel != INTERNAL and r.next_attempt_at <= now}  # type: ignore[operator]

    async def claim(
        self,
        *,
        now: datetime,
        limit: int,
        claimer: str,
        lease_s: float,
        channels: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedDelivery]:
        if limit < 1:
            return []
        first: dict[tuple[str, str, str], DeliveryRow] = {}
        for r in sorted(self._pending(), key=lambda r: r.sequence_number):
            first.setdefault((r.username, r.channel, r.conversation_id), r)

        def in_scope(r: DeliveryRow) -> bool:
            return r.channel in channels if channels is not None else r.channel not in (INTERNAL, *exclude)

        due = sorted(
            (r for r in first.values() if in_scope(r) and r.next_attempt_at <= now),  # type: ignore[operator]
            key=lambda r: (r.next_attempt_at, r.conversation_id, r.sequence_number),
        )[:limit]
        for r in due:
            r.claimed_by, r.next_attempt_at = claimer, now + timedelta(seconds=lease_s)
        claimed = [
            ClaimedDelivery(
                key=DeliveryKey(*r.key),
                message=self._messages.messages[r.message_id],
                attempts=r.attempts,
                traceparent=r.traceparent,
            )
            for r in due
        ]
        return sorted(claimed, key=lambda c: (c.message.conversation_id, c.message.sequence_number))

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        held = [r for r in self._pending() if r.claimed_by is not None and claimer in (None, r.claimed_by)]
        for r in held:
            r.claimed_by, r.next_attempt_at = None, now
        return len(held)

    def _row(self, key: DeliveryKey) -> DeliveryRow | None:
        return self._messages.rows.get((key.message_id, key.username, key.channel))

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        row = self._row(key)
        if row is not None:
            row.next_attempt_at, row.claimed_by, row.attempts = None, None, attempts
            if row.status is not FAILED:
                row.error = None
        for link in links:
            self.links.add(link)

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        row = self._row(key)
        if row is not None and row.status is SENT:
            row.next_attempt_at, row.claimed_by, row.attempts, row.error = at, None, attempts, error

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        row = self._row(key)
        if row is not None:
            row.next_attempt_at, row.claimed_by, row.attempts = None, None, attempts

    async def requeue(
        self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str
    ) -> list[tuple[Message, list[StatusChange]]]:
        changes: dict[str, list[StatusChange]] = {}
        for key in dict.fromkeys(keys):
            row = self._row(key)
            if row is None or row.status is not FAILED:
                continue
            row.status, row.attempts, row.next_attempt_at, row.claimed_by, row.error, row.updated_at = (
                SENT, 0, now, None, None, now
            )
            changes.setdefault(key.message_id, []).append(
                StatusChange(
                    message_id=key.message_id, username=key.username, channel=key.channel, status=SENT, at=now, detail=detail
                )
            )
        result = [(self._messages.messages[m], cs) for m, cs in changes.items()]
        for message, cs in result:
            self._messages._record(message, cs)
        return result
