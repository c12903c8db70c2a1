"""The stream's bearer token as a WebSocket subprotocol (design §17): a browser cannot set an
Authorization header on a WebSocket, so it offers ``opseal.v1`` and ``opseal.bearer.<token>``."""

from __future__ import annotations

import json

import aiohttp
import pytest

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def stream_url(operation) -> str:
    return operation.server.url.replace("http", "ws", 1) + "/api/v1/stream"


async def test_a_stream_authenticates_with_the_bearer_subprotocol(operation):
    """Without an Authorization header, the token offered as a subprotocol opens the stream,
    and the server answers with the protocol opseal.v1."""
    token = operation.actors["customs"].api.token
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            stream_url(operation), protocols=("opseal.v1", f"opseal.bearer.{token}")
        ) as ws,
    ):
        assert ws.protocol == "opseal.v1"
        first = await ws.receive(timeout=10)
        assert json.loads(first.data)["type"] == "idle"


async def test_a_wrong_token_in_the_subprotocol_is_refused(operation):
    """An unknown token offered as a subprotocol is refused with 401 before the upgrade."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(
                stream_url(operation), protocols=("opseal.v1", "opseal.bearer.forged")
            )
    assert refused.value.status == 401


async def test_the_subprotocol_token_counts_only_on_a_websocket_upgrade(operation):
    """A plain request carrying the header Sec-WebSocket-Protocol is not authenticated by it."""
    token = operation.actors["customs"].api.token
    headers = {"Sec-WebSocket-Protocol": f"opseal.v1, opseal.bearer.{token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(operation.server.url + "/api/v1/whoami", headers=headers) as answer,
    ):
        assert answer.status == 401
