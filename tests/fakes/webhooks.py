"""Webhooks in memory: the registry, the callback outbox and a callback transport that records POSTs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chat4all.domain.errors import Conflict, InvalidInput
from chat4all.domain.webhooks import Attempt, CallbackDelivery, DeliveryState, Webhook
from chat4all.ports import Callback, ClaimedCallback


class FakeWebhookRegistry:
    def __init__(self) -> None:
        self._hooks: dict[str, Webhook] = {}

    async def create(self, webhook: Webhook) -> None:
        if webhook.webhook_id in self._hooks:
            raise Conflict("a webhook with this id exists")
        self._hooks[webhook.webhook_id] = webhook

    async def owned_by(self, owner: str) -> list[Webhook]:
        return (await self.for_owners([owner])).get(owner, [])

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        found: dict[str, list[Webhook]] = {}
        for hook in sorted(self._hooks.values(), key=lambda w: (w.created_at, w.webhook_id)):
            if hook.owner in owners:
                found.setdefault(hook.owner, []).append(hook)
        return found

    async def get(self, owner: str, webhook_id: str) -> Webhook | None:
        hook = self._hooks.get(webhook_id)
        return hook if hook is not None and hook.owner == owner else None

    async def delete(self, owner: str, webhook_id: str) -> bool:
        if await self.get(owner, webhook_id) is None:
            return False
        del self._hooks[webhook_id]
        return True

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        hook = await self.get(owner, webhook_id)
        if hook is None or not hook.active:
            return False
        self._hooks[webhook_id] = hook.model_copy(update={"disabled_at": at, "disabled_reason": reason})
        return True


@dataclass
class _Row:
    id: int
    callback: Callback
    created_at: datetime
    next_attempt_at: datetime
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    claimed_by: str | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    tries: list[Attempt] = field(default_factory=list)


class FakeWebhookOutbox:
    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}
        self._streaks: dict[str, int] = {}
        self._next_id = 1

    async def enqueue(self, callbacks: Sequence[Callback], *, now: datetime) -> int:
        have = {(r.callback.webhook_id, r.callback.event_id) for r in self._rows.values()}
        new = 0
        for c in callbacks:
            if (c.webhook_id, c.event_id) in have:
                continue
            have.add((c.webhook_id, c.event_id))
            self._rows[self._next_id] = _Row(self._next_id, c, created_at=now, next_attempt_at=now)
            self._next_id += 1
            new += 1
        return new

    async def known(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        have = {(r.callback.webhook_id, r.callback.event_id) for r in self._rows.values()}
        return {k for k in keys if k in have}

    async def claim(self, *, now: datetime, limit: int, claimer: str, lease_s: float) -> list[ClaimedCallback]:
        pending = sorted((r for r in self._rows.values() if r.state is DeliveryState.PENDING), key=lambda r: r.id)
        oldest: dict[tuple[str, str], _Row] = {}
        for r in pending:
            oldest.setdefault((r.callback.webhook_id, r.callback.subject_id), r)
        due = sorted((r for r in oldest.values() if r.next_attempt_at <= now), key=lambda r: (r.next_attempt_at, r.id))
        claimed = sorted(due[:limit], key=lambda r: r.id)
        for r in claimed:
            r.claimed_by, r.next_attempt_at = claimer, now + timedelta(seconds=lease_s)
        return [
            ClaimedCallback(
                id=r.id,
                webhook_id=r.callback.webhook_id,
                owner=r.callback.owner,
                event_id=r.callback.event_id,
                type=r.callback.type,
                subject_id=r.callback.subject_id,
                body=r.callback.body,
                attempts=r.attempts,
                traceparent=r.callback.traceparent,
            )
            for r in claimed
        ]

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        held = [
            r
            for r in self._rows.values()
            if r.state is DeliveryState.PENDING and r.claimed_by is not None and claimer in (None, r.claimed_by)
        ]
        for r in held:
            r.claimed_by, r.next_attempt_at = None, now
        return len(held)

    async def record(
        self, callback: ClaimedCallback, attempt: Attempt, *, retry_at: datetime | None, now: datetime
    ) -> int:
        row = self._rows.get(callback.id)
        if row is None:
            return 0
        row.tries.append(attempt)
        if row.state is not DeliveryState.PENDING:
            return 0
        row.attempts, row.claimed_by = attempt.attempt, None
        if attempt.ok:
            row.state, row.finished_at, row.last_error = DeliveryState.DELIVERED, now, None
        else:
            row.last_error = attempt.error or f"HTTP {attempt.status_code}"
            if retry_at is not None:
                row.next_attempt_at = retry_at
                return self._streaks.get(callback.webhook_id, 0)
            row.state, row.finished_at = DeliveryState.FAILED, now
        streak = self._streaks.get(callback.webhook_id, 0) + 1 if not attempt.ok else 0
        self._streaks[callback.webhook_id] = streak
        return streak

    async def cancel(self, webhook_id: str, *, reason: str, now: datetime) -> int:
        pending = [
            r for r in self._rows.values() if r.callback.webhook_id == webhook_id and r.state is DeliveryState.PENDING
        ]
        for r in pending:
            r.state, r.last_error, r.finished_at, r.claimed_by = DeliveryState.CANCELLED, reason, now, None
        return len(pending)

    async def forget(self, webhook_id: str) -> None:
        self._rows = {i: r for i, r in self._rows.items() if r.callback.webhook_id != webhook_id}
        self._streaks.pop(webhook_id, None)

    async def deliveries(self, webhook_id: str, *, limit: int, before: int | None) -> list[CallbackDelivery]:
        rows = sorted(
            (
                r
                for r in self._rows.values()
                if r.callback.webhook_id == webhook_id and (before is None or r.id < before)
            ),
            key=lambda r: -r.id,
        )[:limit]
        return [
            CallbackDelivery(
                id=r.id,
                event_id=r.callback.event_id,
                type=r.callback.type,
                body=r.callback.body,
                state=r.state,
                created_at=r.created_at,
                next_attempt_at=r.next_attempt_at if r.state is DeliveryState.PENDING else None,
                finished_at=r.finished_at,
                last_error=r.last_error,
                attempts=list(r.tries),
            )
            for r in rows
        ]

    async def prune(self, *, finished_before: datetime) -> int:
        old = [
            i
            for i, r in self._rows.items()
            if r.state is not DeliveryState.PENDING and r.finished_at is not None and r.finished_at < finished_before
        ]
        for i in old:
            del self._rows[i]
        return len(old)


@dataclass(frozen=True)
class Post:
    url: str
    body: bytes
    headers: dict[str, str]


class FakeCallbackTransport:
    """Answers every POST with the next of ``answers`` ((status, None) or (None, why)), repeating
    the last; records what was posted. URLs not starting with http(s):// are refused by ``check``."""

    def __init__(self, *answers: tuple[int | None, str | None]) -> None:
        self.answers = list(answers) or [(200, None)]
        self.posts: list[Post] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def check(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("the url must be http(s)")

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int | None, str | None]:
        self.posts.append(Post(url, body, dict(headers)))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

