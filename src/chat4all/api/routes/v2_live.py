"""v2's live routes: the HTTP twin of the socket's typing frame (services/live.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from chat4all.api.deps import CurrentUser, ServicesDep
from chat4all.api.errors import responses
from chat4all.domain.errors import Unavailable

router = APIRouter(prefix="/v2/conversations", tags=["v2"])


class TypingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"state": "start"}]})

    state: Literal["start", "stop"]


@router.post(
    "/{conversation_id}/typing",
    status_code=204,
    response_class=Response,
    responses=responses(401, 404, 422),
)
async def set_typing(conversation_id: str, body: TypingIn, user: CurrentUser, services: ServicesDep) -> Response:
    """Tells the other members' v2 sockets that you started or stopped typing. A `start` lapses
    after 6 s unless repeated; at most one `start` per conversation every 2 s is relayed (more
    are accepted and dropped). Nothing is stored."""
    if services.live is None:
        raise Unavailable("typing is not served by this node")
    await services.live.typing(user, conversation_id, body.state)
    return Response(status_code=204)
