"""GET /v1/presence/{username}."""

from __future__ import annotations

from fastapi import APIRouter

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import PresenceOut

router = APIRouter(prefix="/v1/presence", tags=["presence"])


@router.get("/{username}", response_model=PresenceOut, responses=responses(401, 404))
async def presence(username: str, _: CurrentUser, services: ServicesDep) -> PresenceOut:
    await services.users.profile(username)  # 404 for a user that does not exist
    p = await services.connections.presence(username)
    return PresenceOut(username=p.username, status=p.status, last_seen=p.last_seen)
