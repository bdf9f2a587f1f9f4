"""Time as a dependency: services ask a ``Clock`` instead of reading the wall clock.

Production passes ``system_clock``; tests pass a ``FakeClock`` (tests/fakes/clock.py) and move
time forward themselves, so TTLs, expiries and back-offs are tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chat4all.domain.ids import utcnow

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware UTC."""

system_clock: Clock = utcnow
