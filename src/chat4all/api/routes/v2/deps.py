"""The v2 services, as a route dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from chat4all.api.deps import ServicesDep
from chat4all.domain.errors import Unavailable
from chat4all.services.bundle import V2Services


async def get_v2(services: ServicesDep) -> V2Services:
    if services.v2 is None:  # pragma: no cover - every API runtime builds them
        raise Unavailable("API v2 is not available on this node")
    return services.v2


V2 = Annotated[V2Services, Depends(get_v2)]
