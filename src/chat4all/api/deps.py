"""Annotated dependencies shared by the routes: the services and the calling user.

The composition root puts the services on ``app.state.services``; routes get them through
``ServicesDep`` and never see adapters or the runtime.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from chat4all.api.bearer import bearer_token
from chat4all.domain.errors import Unauthenticated
from chat4all.services.auth import Session
from chat4all.services.bundle import Services


class _Bearer(OAuth2PasswordBearer):
    """Documents the scheme (Swagger UI's "Authorize" posts the OAuth2 password form to our
    token endpoint) and reads the header with the parser the fast path and the socket share."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return bearer_token(request.headers.get("authorization"))


_bearer = _Bearer(tokenUrl="/v1/auth/token", scheme_name="OAuth2PasswordBearer", auto_error=False)


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


OptionalToken = Annotated[str | None, Depends(_bearer)]


async def current_session(services: ServicesDep, token: OptionalToken) -> Session:
    if not token:
        raise Unauthenticated("send an access token: Authorization: Bearer <token>")
    return await services.auth.session(token)


async def current_user(session: Annotated[Session, Depends(current_session)]) -> str:
    return session.username


# async, so that FastAPI calls them on the event loop instead of handing them to a thread
CurrentSession = Annotated[Session, Depends(current_session)]
CurrentUser = Annotated[str, Depends(current_user)]
