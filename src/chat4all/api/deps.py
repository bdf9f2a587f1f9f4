"""Annotated dependencies shared by the routes: the services and the calling user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from chat4all.domain.errors import Unauthenticated
from chat4all.runtime import Runtime, Services
from chat4all.services.auth import Session

# tokenUrl makes Swagger UI's "Authorize" post the OAuth2 password form to our token endpoint
_bearer = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_services(request: Request) -> Services:
    return request.app.state.runtime.services


ServicesDep = Annotated[Services, Depends(get_services)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
