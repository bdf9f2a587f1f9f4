"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): every generated request is
authenticated as the fuzzing user, whose token is fetched by logging in; after a 401 (the fuzzer
itself may have logged that session out) the next request logs in again."""

from __future__ import annotations

import os

import httpx
import schemathesis


@schemathesis.auth(refresh_interval=300)
class LoggedIn:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        response = httpx.post(
            os.environ["CHAT4ALL_FUZZ_BASE_URL"] + "/v1/auth/token",
            json={"username": os.environ["CHAT4ALL_FUZZ_USER"], "password": os.environ["CHAT4ALL_FUZZ_PASSWORD"]},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
