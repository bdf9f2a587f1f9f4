"""A small client of the Telegram Bot API: one POST per method, answers classified.

``{base_url}/bot{token}/{method}``; the answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": n, "description": "...", "parameters": {"retry_after": s}}``.
429 (or any ``retry_after``) → RateLimited; 5xx, timeouts and network errors → TransientError;
other 4xx (bad chat, bot blocked, bad token) → PermanentError. The token is part of every URL,
so no error message here ever includes a URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from chat4all.connectors.base import PermanentError, RateLimited, TransientError

DEFAULT_BASE_URL = "https://api.telegram.org"


class BotApi:
    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/bot{token}/"
        self._timeout_s = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport, trust_env=False)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self,
        method: str,
        *,
        json: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
    ) -> Any:
        if self._client is None:
            raise TransientError("telegram: the client is not open")
        try:
            response = await self._client.post(self._url + method, json=json, data=data, files=files)
        except httpx.TimeoutException:
            raise TransientError(f"telegram {method}: timed out") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"telegram {method}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code == 200 and body.get("ok"):
            return body.get("result")
        code = body.get("error_code") or response.status_code
        description = body.get("description") or f"HTTP {response.status_code}"
        raw_parameters = body.get("parameters")
        parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
        reason = f"telegram {method}: {description}"
        if code == 429 or "retry_after" in parameters:
            raise RateLimited(reason, retry_after_s=_seconds(parameters.get("retry_after")))
        if response.status_code >= 500 or (isinstance(code, int) and code >= 500):
            raise TransientError(reason)
        if 400 <= response.status_code < 500:
            raise PermanentError(reason)
        raise TransientError(reason)


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0
