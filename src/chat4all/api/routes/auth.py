"""POST /v1/auth/register, POST /v1/auth/token (password and refresh grants, JSON or OAuth2 form)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError

from chat4all.api.deps import ServicesDep
from chat4all.api.errors import responses
from chat4all.api.schemas import PasswordGrant, RefreshGrant, RegisterRequest, TokenResponse, UserCreated
from chat4all.domain.errors import InvalidInput

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


async def _grant_body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    if content_type not in ("application/json", ""):
        raise InvalidInput("send JSON or an application/x-www-form-urlencoded form", code="unsupported_media_type")
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
