"""GET /v1/users/me and the caller's channel identities."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import ChannelMapped, ChannelMapping, Me

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/me", response_model=Me, responses=responses(401))
async def me(user: CurrentUser, services: ServicesDep) -> Me:
    profile = await services.users.profile(user)
    return Me(username=profile.username, created_at=profile.created_at, channels=profile.channels)


@router.put(
    "/me/channels/{channel}", response_model=ChannelMapped, responses=responses(400, 401, 409, 422)
)
async def set_channel(channel: str, body: ChannelMapping, user: CurrentUser, services: ServicesDep) -> ChannelMapped:
    """Maps the caller to their identity on an external channel (telegram chat id, whatsapp number, ...).

    Phone numbers are stored in E.164 (`+1 555 000 2222` → `+15550002222`); the answer has the
    stored form. One identity maps to one user (409 otherwise)."""
    external_id = await services.users.set_channel(user, channel=channel, external_id=body.external_id)
    return ChannelMapped(channel=channel, external_id=external_id)


@router.delete("/me/channels/{channel}", status_code=204, responses=responses(401, 404, 422))
async def delete_channel(channel: str, user: CurrentUser, services: ServicesDep) -> Response:
    await services.users.delete_channel(user, channel=channel)
    return Response(status_code=204)
