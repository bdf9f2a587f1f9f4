"""Issue 14 in the production profile: a session ended through one API process (etcd holds the
revocation) stops working on another within seconds, and that process closes its sockets."""

from __future__ import annotations

import pytest
import websockets

from chat4all.client import ApiError, Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.test_production import Stack, _login, _register, stack  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.production]


async def _refused(client: Chat4AllClient) -> bool:
    try:
        await client.me()
    except ApiError as exc:
        return exc.status == 401
    return False


async def test_logout_on_one_node_ends_the_session_on_the_other(stack: Stack) -> None:  # noqa: F811
    api1, api2 = stack.process("api", "api-1"), stack.process("api", "api-2")
    await stack.start_all()
    await _register(api1.base_url, "alice")
    on_1 = await _login(api1.base_url, "alice")
    on_2 = Chat4AllClient(api2.base_url, token=on_1.access_token)
    other_session = await _login(api2.base_url, "alice")
    assert (await on_2.me())["username"] == "alice"  # api-2 has verified and cached the token
    try:
        async with on_2.websocket() as socket:
            await socket.ping()
            assert (await socket.receive())["type"] == "pong"
            await on_1.logout()
            await wait_until(lambda: _refused(on_2), timeout=10, what="api-2 to refuse the ended session")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await socket.receive(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert (await other_session.me())["username"] == "alice"  # another session, untouched

        # a password change through api-2 ends every session, seen by api-1
        survivor = await _login(api1.base_url, "alice")
        assert (await survivor.me())["username"] == "alice"
        await other_session.change_password(PASSWORD, "another-password-1")
        await wait_until(lambda: _refused(survivor), timeout=10, what="api-1 to refuse the old session")
        with pytest.raises(ApiError) as spent:
            await survivor.refresh()
        assert spent.value.status == 401
        assert (await other_session.me())["username"] == "alice"
    finally:
        for client in (on_1, on_2, other_session):
            await client.close()
