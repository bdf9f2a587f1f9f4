"""SPEC §2: every error in one shape, never a 500 for bad input; OpenAPI, Swagger, health, metrics."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "trace_id"}
    assert error["code"] == code
    assert error["message"]
    assert len(error["trace_id"]) == 32
    assert response.headers["x-trace-id"] == error["trace_id"]
    return error


@pytest.fixture
async def http(server: RunningServer):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "malformed_json")
    response = await http.post("/v1/auth/token", content=b"{not json", headers={"content-type": "application/json"})
    assert_oauth2_error(response, 400, "invalid_request", "malformed_json")


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"username": 5, "password": "password123"}, {"username": "alice", "password": None},
     [], "text", {"username": "alice", "password": "password123", "extra": 1}],
)
async def test_missing_fields_wrong_types_and_extras_are_422(http: httpx.AsyncClient, body: object) -> None:
    error = assert_error(await http.post("/v1/auth/register", json=body), 422, "validation_error")
    assert isinstance(error["details"], list) and error["details"][0]["loc"][0] == "body"


async def test_token_grant_validation(http: httpx.AsyncClient) -> None:
    # the token endpoint answers in OAuth2's shape (RFC 6749 §5.2), the platform's code beside it
    token = "/v1/auth/token"
    assert_oauth2_error(await http.post(token, json={"grant_type": "magic"}), 422, "unsupported_grant_type", "validation_error")
    assert_oauth2_error(await http.post(token, json={"grant_type": "refresh_token"}), 422, "invalid_request", "validation_error")
    assert_oauth2_error(
        await http.post(token, content=b"x", headers={"content-type": "text/plain"}), 415, "invalid_request", "unsupported_media_type"
    )
    wrong = await http.post(token, data={"username": "nobody", "password": "wrong"})
    assert_oauth2_error(wrong, 401, "invalid_grant", "unauthenticated")
    assert wrong.json()["error_description"] == "wrong username or password"


def assert_oauth2_error(response: httpx.Response, status: int, error: str, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["error"], body["code"]) == (error, code), body
    assert isinstance(body["error_description"], str) and body["error_description"]


async def test_unknown_routes_and_methods(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v1/nothing-here"), 404, "not_found")
    assert_error(await http.delete("/v1/auth/register"), 405, "method_not_allowed")


async def test_missing_or_bad_token_is_401_with_a_challenge(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/users/me")
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(await http.get("/v1/users/me", headers={"Authorization": "Bearer x.y.z"}), 401, "unauthenticated")


async def test_an_oversized_body_is_413(http: httpx.AsyncClient, server: RunningServer) -> None:
    limit = server.runtime.settings.max_body_bytes
    big = b'{"username": "' + b"a" * limit + b'"}'
    assert_error(await http.post("/v1/auth/register", content=big, headers={"content-type": "application/json"}), 413, "payload_too_large")

    async def chunks():
        yield b'{"username": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    streamed = await http.post("/v1/auth/register", content=chunks(), headers={"content-type": "application/json"})
    assert_error(streamed, 413, "payload_too_large")


async def test_a_caller_trace_id_is_continued(http: httpx.AsyncClient) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await http.get("/v1/users/me", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert assert_error(response, 401, "unauthenticated")["trace_id"] == trace_id


async def test_openapi_documents_every_route_with_models_and_errors(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/v1/auth/register", "/v1/auth/token", "/v1/users/me", "/v1/conversations", "/v1/messages",
                 "/v1/messages/{message_id}/status", "/v1/presence/{username}", "/health/ready"):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            if path.startswith("/v1/") and path != "/v1/auth/register":
                errors = [s for s in statuses if s[0] in "45"]
                assert errors, f"{method} {path} documents no error"
                shape = "OAuth2Error" if path == "/v1/auth/token" else "ErrorResponse"
                for status in errors:
                    schema = operation["responses"][status]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}
    assert "PasswordGrant" in doc["components"]["schemas"]
    assert "OAuth2PasswordBearer" in doc["components"]["securitySchemes"]


async def test_swagger_ui_is_served(http: httpx.AsyncClient) -> None:
    response = await http.get("/api-docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text and "/openapi.json" in response.text


async def test_health_and_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/health/live")).json() == {"status": "ok", "checks": {}}
    ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok", "event_log": "ok", "schema": "ok", "outbox_relay": "ok", "blobs": "ok", "webhooks": "ok",
        "connectors": "ok", "connector_dispatch": "ok",
    }
    await http.get("/v1/users/me")
    metrics = (await http.get("/metrics")).text
    assert 'chat4all_http_requests_total{method="GET",route="/v1/users/me",status="401"}' in metrics
    assert "chat4all_http_request_duration_seconds_bucket" in metrics


async def test_readiness_names_the_dependency_that_is_down(http: httpx.AsyncClient, server: RunningServer) -> None:
    await server.runtime.event_log.close()
    error = assert_error(await http.get("/health/ready"), 503, "unavailable")
    assert error["details"]["event_log"].startswith("down")
    assert error["details"]["database"] == "ok"
    await server.runtime.event_log.start()
