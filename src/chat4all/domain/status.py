"""Delivery statuses and the one rule about them: they only move forward (R6.3)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class DeliveryStatus(StrEnum):
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"


_RANK = {
    DeliveryStatus.SENT: 0,
    DeliveryStatus.DELIVERED: 1,
    DeliveryStatus.READ: 2,
    DeliveryStatus.FAILED: 3,
}

# A delivery that reached a terminal status never moves again.
TERMINAL = frozenset({DeliveryStatus.READ, DeliveryStatus.FAILED})


def can_move(current: DeliveryStatus, new: DeliveryStatus) -> bool:
    """True when ``new`` is a step forward from ``current``.

    READ and FAILED are terminal; FAILED is only reachable from SENT (a channel that already
    confirmed delivery cannot fail it afterwards).
    """
    if current in TERMINAL:
        return False
    if new is DeliveryStatus.FAILED:
        return current is DeliveryStatus.SENT
    return _RANK[new] > _RANK[current]


def lower_statuses(new: DeliveryStatus) -> list[DeliveryStatus]:
    """The statuses from which a move to ``new`` is allowed (for a guarded UPDATE)."""
    return [s for s in DeliveryStatus if can_move(s, new)]


def steps_to(current: DeliveryStatus, new: DeliveryStatus) -> list[DeliveryStatus]:
    """Statuses recorded when moving ``current`` → ``new``: a READ implies a DELIVERED."""
    if not can_move(current, new):
        return []
    if new is DeliveryStatus.READ and current is DeliveryStatus.SENT:
        return [DeliveryStatus.DELIVERED, DeliveryStatus.READ]
    return [new]


def aggregate(statuses: Iterable[DeliveryStatus]) -> DeliveryStatus:
    """A message's own status: the least advanced of its live deliveries.

    Failed deliveries do not hold the others back; a message whose every delivery failed is
    FAILED.
    """
    live = [s for s in statuses if s is not DeliveryStatus.FAILED]
    if not live:
        return DeliveryStatus.FAILED
    return min(live, key=_RANK.__getitem__)
