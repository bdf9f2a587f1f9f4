"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chat4all.api.deps import ServicesDep
from chat4all.api.errors import error_response, responses
from chat4all.api.responses import JSON
from chat4all.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Health)
async def live() -> Health:
    return Health(status="ok")


@router.get("/health/ready", response_model=Health, responses=responses(503))
async def ready(services: ServicesDep) -> JSON:
    checks = await services.readiness()
    down = {name: state for name, state in checks.items() if state != "ok"}
    if down:
        return error_response(503, "unavailable", f"not ready: {', '.join(down)} down", details=checks)
    return JSON({"status": "ready", "checks": checks})


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
