"""POST /v1/auth/register, POST /v1/auth/token (password and refresh grants, JSON or OAuth2 form),
POST /v1/auth/logout and POST /v1/auth/password."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from chat4all.api.deps import CurrentSession, OptionalToken, ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import (
    ChangePassword,
    LogoutRequest,
    PasswordGrant,
    RefreshGrant,
    RegisterRequest,
    TokenResponse,
    UserCreated,
)
from chat4all.domain.errors import Unauthenticated

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_Grant = TypeAdapter(Annotated[PasswordGrant | RefreshGrant, Field(discriminator="grant_type")])


@router.post("/register", status_code=201, response_model=UserCreated, responses=responses(400, 409, 422, 429))
async def register(body: RegisterRequest, request: Request, services: ServicesDep) -> UserCreated:
    user = await services.auth.register(username=body.username, password=body.password, address=_address(request))
    return UserCreated(username=user.username, created_at=user.created_at)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=responses(400, 401, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/PasswordGrant"},
                            {"$ref": "#/components/schemas/RefreshGrant"},
                        ]
                    }
                },
                "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/PasswordGrant"}},
            },
        }
    },
)
async def token(request: Request, services: ServicesDep) -> TokenResponse:
    """Password grant or refresh grant, as JSON or as the OAuth2 form (Swagger's Authorize).

    A refresh token works once: the answer carries its successor. Presenting a spent one
    revokes every token descended from the same login.
    """
    grant = await _parse_grant(request)
    if isinstance(grant, RefreshGrant):
        pair = await services.auth.refresh(refresh_token=grant.refresh_token)
    else:
        pair = await services.auth.login(username=grant.username, password=grant.password, address=_address(request))
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


def _address(request: Request) -> str:
    """The client's address as the server sees it (a proxy in front should pass it on, e.g.
    uvicorn's --proxy-headers with --forwarded-allow-ips)."""
    return request.client.host if request.client else "unknown"
@router.post("/logout", status_code=204, responses=responses(400, 401, 403, 415, 422))
async def logout(
    services: ServicesDep,
    body: LogoutRequest | None = None,
    token: OptionalToken = None,
) -> Response:
    """Ends the session (the login and every refresh since) of the access token sent, and/or of
    the `refresh_token` in the body: its refresh tokens stop working at once, its access tokens
    within seconds on every node, and its WebSockets are closed (4401)."""
    refresh_token = body.refresh_token if body else None
    session = await services.auth.session(token) if token else None
    if session is None and refresh_token is None:
        raise Unauthenticated("send the access token (Authorization: Bearer) or the refresh token to end")
    await services.auth.logout(session=session, refresh_token=refresh_token)
    return Response(status_code=204)


@router.post("/password", response_model=TokenResponse, responses=responses(400, 401, 403, 415, 422))
async def change_password(body: ChangePassword, session: CurrentSession, services: ServicesDep) -> TokenResponse:
    """Changes the caller's password (403 `wrong_password` if `current_password` is wrong).
    Every session of the user ends, this one included; the answer is a new one for the caller."""
    pair = await services.auth.change_password(
        session, current_password=body.current_password, new_password=body.new_password
    )
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)


async def _grant_body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    # anything else that is not JSON was answered 415 by api.middleware.JsonBody
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except ValueError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": None}]
        ) from None
    if not isinstance(data, dict):
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",), "msg": "expected an object", "input": None}]
        )
    return data


async def _parse_grant(request: Request) -> PasswordGrant | RefreshGrant:
    body = await _grant_body(request)
    body.setdefault("grant_type", "password")
    try:
        return _Grant.validate_python(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False, include_context=False)]
        ) from None
