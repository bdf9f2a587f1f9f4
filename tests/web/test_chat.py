"""Two people in two browser contexts: sign up, chat live, ticks sent → delivered → read;
and, when the server has API v2, typing and a group that gains a third person."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer, wait_until
from tests.connector_helpers import Channels, simulated_post
from tests.web.conftest import Person, require_v2


async def offline(person: Person, username: str) -> bool:
    presence = await person.page.evaluate(f"chat4all.client.presence({username!r})")
    return presence["status"] == "offline"


async def test_two_people_chat_live_and_see_ticks_go_sent_delivered_read(browser: Any, server: RunningServer) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    await ann.sign_up()
    await ben.sign_up()

    # Ben closes the app: a message to him now is stored (SENT) and waits for him
    await ben.page.goto("about:blank")
    await wait_until(lambda: offline(ann, "ben"), what="ben to be offline")
    await ann.start_chat("ben")
    await ann.send("Hello Ben!")
    await ann.wait_tick("Hello Ben!", "SENT")

    # he opens the app again: the catch-up delivers it and his client acknowledges it
    await ben.page.goto(server.base_url + "/")
    await ben.online()
    await ann.wait_tick("Hello Ben!", "DELIVERED")
    conversation = ben.page.locator('[data-testid=conversation][data-title="ann"]')
    assert await conversation.get_by_test_id("unread").inner_text() == "1"
    assert await ann.tick("Hello Ben!") == "DELIVERED"  # not read until he looks at it

    # he opens the conversation: read
    await ben.open_chat("ann")
    await ben.message("Hello Ben!").wait_for()
    await ann.wait_tick("Hello Ben!", "READ")

    # and they talk live, both ways, with the conversation open on both sides
    await ben.send("Hi Ann, got it")
    await ann.message("Hi Ann, got it").wait_for()
    await ben.wait_tick("Hi Ann, got it", "READ")  # Ann has the chat open: it is read as it arrives
    for i in range(3):
        await ann.send(f"ping {i}")
    for i in range(3):
        await ben.message(f"ping {i}").wait_for()
    assert await ben.shown_texts() == ["Hello Ben!", "Hi Ann, got it", "ping 0", "ping 1", "ping 2"]
    assert await ann.shown_texts() == ["Hello Ben!", "Hi Ann, got it", "ping 0", "ping 1", "ping 2"]
    # a screen reader hears the new message
    assert "ping 2" in await ben.page.get_by_test_id("announcer").inner_text()
    assert ann.errors == [] and ben.errors == []  # type: ignore[attr-defined]


async def test_a_wrong_password_reads_as_such_and_sign_out_ends_the_session(browser: Any, server: RunningServer) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    await ann.sign_up()
    await ann.page.get_by_test_id("sign-out").click()
    await ann.page.get_by_label("Username").fill("ann")
    await ann.page.get_by_label("Password").fill("not-the-password")
    await ann.page.get_by_role("button", name="Sign in").click()
    assert await ann.page.get_by_role("alert").inner_text() == "Wrong username or password."
    # the API docs are one link away, and load with no network beyond this server
    await ann.page.get_by_role("link", name="API docs").click()
    await ann.page.locator(".swagger-ui .info .title").filter(has_text="Chat4All").wait_for()


async def test_typing_is_shown_v2(browser: Any, server: RunningServer) -> None:
    await require_v2(server.base_url)
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    await ann.sign_up()
    await ben.sign_up()
    await ann.start_chat("ben")
    await ann.send("are you there?")
    await ben.open_chat("ann")
    await ben.page.get_by_test_id("compose").press_sequentially("typing something", delay=30)
    await ann.page.get_by_test_id("typing").filter(has_text="ben is typing").wait_for()
    await ben.page.get_by_test_id("compose").press("Enter")
    await ann.message("typing something").wait_for()
    await ann.page.get_by_test_id("typing").wait_for(state="detached")


async def test_a_group_gains_a_third_person_v2(browser: Any, server: RunningServer) -> None:
    await require_v2(server.base_url)
    ann = await Person.open(browser, server.base_url, "ann")
    ben = await Person.open(browser, server.base_url, "ben")
    cat = await Person.open(browser, server.base_url, "cat")
    for person in (ann, ben, cat):
        await person.sign_up()
    await ann.start_chat("ben", group="Team")
    await ann.send("welcome to the team")
    await ben.open_chat("Team")
    await ben.message("welcome to the team").wait_for()

    await ann.page.get_by_test_id("group-settings").click()
    await ann.page.get_by_test_id("add-member").fill("cat")
    await ann.page.get_by_test_id("add-member-submit").click()
    # Cat's inbox gains the group live, with what was said before she joined hidden or shown as the server decides
    await cat.page.locator('[data-testid=conversation][data-title="Team"]').wait_for()
    await cat.open_chat("Team")
    await ann.send("hi cat")
    await cat.message("hi cat").wait_for()
    await ben.message("hi cat").wait_for()
    await ann.page.get_by_text("ann added cat").wait_for()


async def test_an_expired_access_token_is_refreshed_and_the_refresh_token_rotates(browser: Any, server: RunningServer) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    await ann.sign_up()
    before = await ann.page.evaluate("JSON.parse(localStorage.getItem('chat4all.tokens'))")
    # the access token stops working (as when it expires); the refresh token still does
    await ann.page.evaluate(
        "localStorage.setItem('chat4all.tokens', JSON.stringify({...JSON.parse(localStorage.getItem('chat4all.tokens')), access_token: 'expired'}))"
    )
    await ann.page.reload()
    await ann.page.get_by_test_id("me").filter(has_text="ann").wait_for()
    await ann.online()
    after = await ann.page.evaluate("JSON.parse(localStorage.getItem('chat4all.tokens'))")
    assert after["access_token"] not in ("expired", before["access_token"])
    assert after["refresh_token"] != before["refresh_token"]  # rotated: the old one is spent
    # the session is ended elsewhere (another device signs out): the socket closes (4401), the
    # refresh fails, and the app shows the sign-in page by itself
    async with httpx.AsyncClient() as http:
        ended = await http.post(f"{server.base_url}/v1/auth/logout", json={"refresh_token": after["refresh_token"]})
    assert ended.status_code == 204
    await ann.page.get_by_role("heading", name="Sign in").wait_for()
    assert await ann.page.evaluate("localStorage.getItem('chat4all.tokens')") is None


async def test_channel_identities_are_linked_and_unlinked_in_settings(browser: Any, server: RunningServer) -> None:
    ann = await Person.open(browser, server.base_url, "ann")
    await ann.sign_up()
    await ann.page.get_by_role("link", name="Channels").click()
    whatsapp = ann.page.get_by_test_id("channel-whatsapp")
    await whatsapp.get_by_role("textbox").fill("+5511999990000")
    await whatsapp.get_by_role("button", name="Link").click()
    # the server links a number once its owner proves it: the app shows the code to send from it
    claim = whatsapp.get_by_test_id("claim-whatsapp")
    code = (await claim.locator(".code").inner_text()).strip()
    assert len(code) == 6 and code.isdigit()
    assert (await ann.page.evaluate("chat4all.client.me()"))["channels"] == {}
    # ... which ann sends from WhatsApp: the provider posts it to the platform's webhook
    proof = {"type": "message", "from": "+5511999990000", "text": code, "id": "wamid.claim"}
    answer = await simulated_post(server.base_url, "whatsapp", await Channels(server).secret("whatsapp"), proof)
    assert answer.status_code == 200, answer.text
    await whatsapp.get_by_text("linked", exact=True).wait_for()  # the app looks again by itself
    me = await ann.page.evaluate("chat4all.client.me()")
    assert me["channels"] == {"whatsapp": "+5511999990000"}
    await whatsapp.get_by_role("button", name="Unlink").click()
    await whatsapp.get_by_text("not linked").wait_for()
    assert (await ann.page.evaluate("chat4all.client.me()"))["channels"] == {}
    # every channel the server has is offered
    for channel in ("instagram", "messenger", "telegram"):
        await ann.page.get_by_test_id(f"channel-{channel}").wait_for()
