"""In memory: the delivery aggregate (``ports.DeliveryStore``) and the read side of messages
(``ports.MessageStore``) over the same rows, with the status outbox, a relay and a clock-free
API (times are passed in, as to the real store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chat4all.domain.models import Delivery, Message, StatusChange
from chat4all.domain.status import DeliveryStatus, steps_to
from chat4all.ports import ConnectorLink, DeliveryKey, Moved, NewMessage, PersistResult, Receipt

Key = tuple[str, str, str]  # (message_id, username, channel)


class FakeDeliveryStore:
    """Same rules as ``adapters/sql``: known message_ids skipped, dense sequence numbers per
    conversation, one SENT delivery per target, forward-only moves (a READ on SENT records
    DELIVERED then READ), every change in ``history`` and, but for creation (SENT), ``outbox``."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.rows: dict[Key, Delivery] = {}
        self.history_rows: list[StatusChange] = []
        self.outbox: list[StatusChange] = []  # StatusEvents not relayed yet, in order
        self.pending: dict[Key, dict[str, object]] = {}  # external deliveries: attempts, due, error
        self.links: list[ConnectorLink] = []
        self.transactions = 0  # persist_batch calls: the router's round trips
        self._last_seq: dict[str, int] = {}
        self.fail_next: Exception | None = None  # raised by the next write, once

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    # DeliveryStore ----------------------------------------------------------------------------

    async def persist_batch(self, messages: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        self._maybe_fail()
        self.transactions += 1
        result = PersistResult(new=[], known=[])
        seen: set[str] = set()
        for m in messages:
            if m.message_id in seen:
                continue
            seen.add(m.message_id)
            if m.message_id in self.messages:
                result.known.append(self.messages[m.message_id])
                continue
            seq = self._last_seq.get(m.conversation_id, 0) + 1
            self._last_seq[m.conversation_id] = seq
            stored = Message(
                message_id=m.message_id,
                conversation_id=m.conversation_id,
                sequence_number=seq,
                sender=m.sender,
                recipients=tuple(m.recipients),
                channels=tuple(m.channels),
                payload=m.payload,
                metadata=m.metadata,
                created_at=m.created_at,
            )
            self.messages[m.message_id] = stored
            for username, channel in m.targets:
                key = (m.message_id, username, channel)
                self.rows[key] = Delivery(
                    message_id=m.message_id, username=username, channel=channel, status=DeliveryStatus.SENT, updated_at=at
                )
                if channel != "internal":
                    self.pending[key] = {"attempts": 0, "due": at, "error": None}
                change = StatusChange(
                    message_id=m.message_id, username=username, channel=channel, status=DeliveryStatus.SENT, at=at
                )
                self.history_rows.append(change)  # SENT is not in the outbox: the router appends it
            result.new.append(stored)
        return result

    async def advance_many(self, receipts: Sequence[Receipt], *, at: datetime) -> Moved:
        self._maybe_fail()
        changes: dict[str, list[StatusChange]] = {}
        for r in receipts:
            for message_id in dict.fromkeys(r.message_ids):
                key = (message_id, r.username, r.channel)
                row = self.rows.get(key)
                steps = steps_to(row.status, r.status) if row is not None else []
                if row is None or not steps:
                    continue
                self.rows[key] = row.model_copy(update={"status": r.status, "updated_at": at, "error": r.detail})
                for step in steps:
                    change = StatusChange(
                        message_id=message_id, username=r.username, channel=r.channel, status=step, at=at, detail=r.detail
                    )
                    changes.setdefault(message_id, []).append(change)
                    self.history_rows.append(change)
                    self.outbox.append(change)
        return [(self.messages[m], cs) for m, cs in changes.items()]

    async def requeue(self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str) -> Moved:
        self._maybe_fail()
        changes: dict[str, list[StatusChange]] = {}
        for k in keys:
            key = (k.message_id, k.username, k.channel)
            row = self.rows.get(key)
            if row is None or row.status is not DeliveryStatus.FAILED:
                continue
            self.rows[key] = row.model_copy(update={"status": DeliveryStatus.SENT, "updated_at": now, "error": None})
            self.pending[key] = {"attempts": 0, "due": now, "error": None}
            change = StatusChange(
                message_id=k.message_id, username=k.username, channel=k.channel, status=DeliveryStatus.SENT, at=now,
                detail=detail,
            )
            changes.setdefault(k.message_id, []).append(change)
            self.history_rows.append(change)
            self.outbox.append(change)
        return [(self.messages[m], cs) for m, cs in changes.items()]

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        self._maybe_fail()
        self.pending.pop((key.message_id, key.username, key.channel), None)
        self.links.extend(link for link in links if link not in self.links)

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        self._maybe_fail()
        k = (key.message_id, key.username, key.channel)
        if k in self.pending and self.rows[k].status is DeliveryStatus.SENT:
            self.pending[k] = {"attempts": attempts, "due": at, "error": error}

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        self._maybe_fail()
        self.pending.pop((key.message_id, key.username, key.channel), None)

    # MessageStore (reads) ---------------------------------------------------------------------

    async def get_message(self, message_id: str) -> Message | None:
        return self.messages.get(message_id)

    async def list_messages(self, conversation_id: str, *, viewer: str, since: int, limit: int) -> list[Message]:
        found = [
            m
            for m in self.messages.values()
            if m.conversation_id == conversation_id
            and m.sequence_number > since
            and (m.sender == viewer or viewer in m.recipients)
        ]
        return sorted(found, key=lambda m: m.sequence_number)[:limit]

    async def deliveries(self, message_id: str) -> list[Delivery]:
        return [d for (m, _, _), d in sorted(self.rows.items()) if m == message_id]

    async def history(self, message_id: str) -> list[StatusChange]:
        return [c for c in self.history_rows if c.message_id == message_id]

    async def pending_for(
        self, username: str, *, channel: str, after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        found = sorted(
            (self.messages[m] for (m, u, c), d in self.rows.items() if u == username and c == channel and d.status is DeliveryStatus.SENT),
            key=lambda m: (m.conversation_id, m.sequence_number),
        )
        if after is not None:
            found = [m for m in found if (m.conversation_id, m.sequence_number) > after]
        return found[:limit]

    def status(self, message_id: str, username: str, channel: str = "internal") -> DeliveryStatus:
        return self.rows[(message_id, username, channel)].status


class FakeRelay:
    """The status outbox's relay: ``wake`` counts, ``drain`` moves the outbox to ``relayed``."""

    def __init__(self, store: FakeDeliveryStore) -> None:
        self._store = store
        self.wakes = 0
        self.relayed: list[StatusChange] = []

    def wake(self) -> None:
        self.wakes += 1

    async def drain(self) -> int:
        n = len(self._store.outbox)
        self.relayed.extend(self._store.outbox)
        self._store.outbox.clear()
        return n


