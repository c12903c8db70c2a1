"""The real-time stream: one WebSocket per device session, resumable from a cursor.

Each message is ``{"type": "event", "event": {...}, "cursor": "..."}``; the cursor after an
event covers it and everything before, so a client that reconnects with the last cursor it
processed misses nothing and receives nothing twice. The stream reads from the database, the
bus only wakes it up; it also polls, so a lost wake-up only delays delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import FIRST_COMPLETED

from aiohttp import WSMsgType, web

from ..errors import OpSealError
from ..services import areas, identity
from ..services.base import Context, Principal
from .auth import bearer_token, principal
from .keys import CONTEXT

__all__ = ["routes"]

routes = web.RouteTableDef()
POLL_SECONDS = 5.0
BATCH = 500


@routes.get("/api/v1/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    ctx: Context = request.app[CONTEXT]
    cursor = request.query.get("cursor", "")
    areas.decode_cursor(cursor)  # refuse a bad cursor before upgrading
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    queue = ctx.bus.subscribe()
    reader = asyncio.create_task(_drain_client(ws))
    try:
        await _pump(ctx, ws, who, bearer_token(request), cursor, queue, reader)
    finally:
        ctx.bus.unsubscribe(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _pump(
    ctx: Context,
    ws: web.WebSocketResponse,
    who: Principal,
    token: str,
    cursor: str,
    queue: asyncio.Queue,
    reader: asyncio.Task,
) -> None:  # type: ignore[type-arg]
    while not ws.closed and not reader.done():
        try:
            await identity.authenticate(ctx, token)  # revoked or expired: stop streaming
        except OpSealError as error:
            await ws.send_json({"type": "error", **error.to_json()})
            return
        cursor = await _send_new(ctx, ws, who, cursor)
        wake = asyncio.ensure_future(queue.get())
        await asyncio.wait({wake, reader}, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        wake.cancel()
        while not queue.empty():
            queue.get_nowait()


async def _send_new(ctx: Context, ws: web.WebSocketResponse, who: Principal, cursor: str) -> str:
    while True:
        page = await areas.sync(ctx, who, cursor, BATCH)
        positions = areas.decode_cursor(cursor)
        for event in page["events"]:
            positions[areas.AreaRef(event["operation_id"], event["area"])] = event["seq"]
            await ws.send_json(
                {"type": "event", "event": event, "cursor": areas.encode_cursor(positions)}
            )
        cursor = page["cursor"]
        if not page["more"]:
            await ws.send_json({"type": "idle", "cursor": cursor})
            return cursor


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
