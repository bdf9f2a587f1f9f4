"""The app driven in-process through its ASGI interface, without a socket (how embedders test)."""

from __future__ import annotations

import httpx

from chat4all.runtime import create_app
from chat4all.client import Chat4AllClient
from chat4all.config import Settings
from tests.conftest import PASSWORD, persisted


async def test_register_converse_and_send_in_process(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with Chat4AllClient("http://chat4all.test", transport=transport) as alice, Chat4AllClient(
            "http://chat4all.test", transport=transport
        ) as bob:
            await alice.register("alice", PASSWORD)
            await bob.register("bob", PASSWORD)
            await alice.login("alice", PASSWORD)
            await bob.login("bob", PASSWORD)
            conversation = await alice.create_conversation("private", ["bob"])
            sent = await alice.send_text(conversation["conversation_id"], "in process")
            message = await persisted(bob, sent["message_id"])
            assert (message["sequence_number"], message["payload"]["text"]) == (1, "in process")
