"""Draining a node (``kill -USR1``) before a stop: its streams move elsewhere, its posts go on.

A real ``opseal-server serve`` process (see :mod:`.procs`) gets the signal the operator sends
with ``systemctl kill -s USR1 opseal-server@N``.
"""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import pytest

from .helpers import make_area, post_text
from .procs import Node, ServerProcess, admin_context, open_operation

AREA = "seizures"


async def test_a_draining_node_closes_streams_with_a_hint_refuses_new_ones_and_takes_posts(
    database_url,
):
    """After SIGUSR1 an open stream is closed with 1012 and the drain hint, a new stream and
    ``/readyz`` get 503 (a balancer sends both to another node), and a post is still stored:
    the client resuming from its cursor elsewhere receives it."""
    async with ServerProcess(database_url) as proc, admin_context(database_url) as ctx:
        node = Node(proc.url, ctx)
        try:
            op = await open_operation(node)
            state, secret = await make_area(op, AREA, ["customs", "partner"])
            partner = op.actors["partner"].api
            cursor = (await partner.sync()).cursor
            headers = {"Authorization": f"Bearer {partner.token}"}
            stream_url = proc.url.replace("http", "ws", 1) + "/api/v1/stream"
            async with aiohttp.ClientSession() as session:
                ws = await session.ws_connect(stream_url, params={"cursor": cursor},
                                              headers=headers)  # fmt: skip
                assert (await ws.receive_json(timeout=10))["type"] == "idle"
                os.kill(proc.pid, signal.SIGUSR1)
                closing = await ws.receive(timeout=10)
                assert closing.type == aiohttp.WSMsgType.CLOSE
                assert (closing.data, closing.extra) == (
                    1012,
                    "node draining; reconnect with your cursor",
                )
                await ws.close()
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(stream_url, params={"cursor": cursor},
                                             headers=headers)  # fmt: skip
                assert refused.value.status == 503
                async with session.get(proc.url + "/readyz") as ready:
                    assert ready.status == 503
            await post_text(op, "customs", AREA, state, secret, 1)
            page = await partner.sync(cursor)
            assert [e.kind for e in page.events if e.area == AREA] == ["message"]
            # SIGTERM still stops the drained node cleanly.
            await asyncio.wait_for(proc.stop(), 15)
        finally:
            await node.close()
