"""Issue 14: no credential reaches a log. A real `chat4all serve` process with its access log on:
the WebSocket handshake line (uvicorn's, `"WebSocket /v1/ws?token=..."`) and every access line
keep the query string's names but not its values."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets

from chat4all.client import Chat4AllClient
from chat4all.observability.logging import redact_target
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import embedded_process

pytestmark = pytest.mark.e2e


def test_redact_target_keeps_names_and_drops_values() -> None:
    assert redact_target("/v1/ws?token=eyJ.a.b") == "/v1/ws?token=[redacted]"
    assert redact_target("/x?a=1&b=&c") == "/x?a=[redacted]&b=[redacted]&c"
    assert redact_target("/v1/users/me") == "/v1/users/me"


async def test_the_url_token_of_a_websocket_never_reaches_the_log(tmp_path: Path) -> None:
    with embedded_process(tmp_path, env={"CHAT4ALL_ACCESS_LOG": "true", "CHAT4ALL_LOG_LEVEL": "INFO"}) as server:
        server.start()
        await server.ready()
        async with Chat4AllClient(server.base_url) as bob:
            await bob.register("bob", PASSWORD)
            await bob.login("bob", PASSWORD)
            ws_base = server.base_url.replace("http://", "ws://") + "/v1/ws"
            async with websockets.connect(f"{ws_base}?token={bob.access_token}") as ws:
                await ws.send('{"type":"ping"}')
                assert "pong" in await asyncio.wait_for(ws.recv(), 10)
            await bob.request("GET", "/v1/users/me", params={"token": bob.access_token, "cursor": "secret-cursor"})
            # a refused handshake logs its target too
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"{ws_base}?token={bob.access_token}", additional_headers={"Origin": "https://evil.example"}):
                    pass

            async def logged() -> str | None:
                text = server.log.read_text()
                return text if text.count("/v1/ws?token=[redacted]") >= 2 else None

            log = await wait_until(logged, timeout=10, what="the handshake lines in the log")
        signature = bob.access_token.rsplit(".", 1)[1]
        assert signature not in log and "secret-cursor" not in log
        assert '"route": "/v1/users/me"' in log or '"route":"/v1/users/me"' in log  # the access log was on
