"""GET /v1/users/me and the caller's channel identities."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import ChannelMapped, ChannelMapping, Me
from chat4all.domain import identities

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/me", response_model=Me, responses=responses(401))
async def me(user: CurrentUser, services: ServicesDep) -> Me:
    profile = await services.users.profile(user)
    return Me(username=profile.username, created_at=profile.created_at, channels=profile.channels)


@router.put(
    "/me/channels/{channel}",
    response_model=ChannelMapped,
    responses={**responses(400, 401, 409, 422), 202: {"model": ChannelMapped, "description": "Pending: send the code"}},
)
async def set_channel(
    channel: str, body: ChannelMapping, user: CurrentUser, services: ServicesDep, response: Response
) -> ChannelMapped:
    """Maps the caller to their identity on an external channel (telegram chat id, whatsapp number, ...).

    Phone numbers are stored in E.164 (`+1 555 000 2222` → `+15550002222`); the answer has the
    stored form. One identity maps to one user (409 otherwise).

    Unless the operator turned verification off, the answer is **202 pending** with a `code`: the
    identity is linked when a message carrying that code arrives *from* it (the user sends it to
    the service's account on that channel) before `expires_at`. An identity already linked to the
    caller answers 200 `linked`."""
    link = await services.users.set_channel(user, channel=channel, external_id=body.external_id)
    if link.claim is None:
        return ChannelMapped(channel=channel, external_id=link.external_id, status="linked")
    response.status_code = 202
    return ChannelMapped(
        channel=channel,
        external_id=link.external_id,
        status="pending",
        code=link.claim.code,
        expires_at=link.claim.expires_at,
        instructions=identities.instructions(link.claim),
    )


@router.delete("/me/channels/{channel}", status_code=204, responses=responses(401, 404, 422))
async def delete_channel(channel: str, user: CurrentUser, services: ServicesDep) -> Response:
    await services.users.delete_channel(user, channel=channel)
    return Response(status_code=204)
