"""The real-time stream: one WebSocket per device session, resumable from a cursor.

Each message is ``{"type": "event", "event": {...}, "cursor": "..."}``; the cursor after an
event covers it and everything before, so a client that reconnects with the last cursor it
processed misses nothing and receives nothing twice. ``{"type": "idle", "cursor": ...}``
says the stream has caught up.

Fan-out: one :class:`StreamHub` per process listens to the bus. For each new entry of an area
it reads the entry once (through :class:`~opseal.server.services.tail.AreaTail`), encodes it
once, and writes it to every subscriber that reads the area — no task wake-up or query per
subscriber. Every :data:`POLL_SECONDS` each subscriber re-checks its token (a revoked device
stops receiving), re-reads which areas it may read, and catches up from the database, so a
lost wake-up delays but never loses an entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from ..bus import Event
from ..errors import BadRequest, OpSealError
from ..services import areas, identity
from ..services.areas import AreaRef
from ..services.base import Context, Principal
from ..services.tail import AreaTail
from .auth import bearer_token, principal
from .keys import CONTEXT, HUB

__all__ = ["POLL_SECONDS", "StreamHub", "routes"]

routes = web.RouteTableDef()
log = structlog.get_logger("opseal.stream")
POLL_SECONDS = 5.0
BATCH = 500


class Subscriber:
    """One stream: its socket, the areas it may read and its position in each."""

    def __init__(
        self, ctx: Context, ws: web.WebSocketResponse, who: Principal, token: str, cursor: str
    ) -> None:
        self.ctx, self.ws, self.who, self.token = ctx, ws, who, token
        self.positions = areas.decode_cursor(cursor)
        self.readable: frozenset[AreaRef] = frozenset()
        self.lock = asyncio.Lock()

    def cursor(self) -> str:
        return areas.encode_cursor({r: self.positions.get(r, 0) for r in self.readable})

    async def refresh(self) -> bool:
        """Re-check the token and the readable areas, then catch up from the database."""
        try:
            await identity.authenticate(self.ctx, self.token)
        except OpSealError as error:
            await self.ws.send_json({"type": "error", **error.to_json()})
            return False
        async with self.ctx.engine.connect() as conn:
            self.readable = frozenset(await areas.readable_areas(self.ctx, conn, self.who))
        async with self.lock:
            while True:
                page = await areas.sync(self.ctx, self.who, self.cursor(), BATCH)
                for entry in page["events"]:
                    await self.send(entry, json.dumps(entry))
                if not page["more"]:
                    break
            await self.ws.send_json({"type": "idle", "cursor": self.cursor()})
        return True

    async def send(self, entry: dict[str, Any], encoded: str) -> None:
        """Send one entry unless already sent (the caller holds :attr:`lock`)."""
        ref = AreaRef(entry["operation_id"], entry["area"])
        if entry["seq"] <= self.positions.get(ref, 0) or self.ws.closed:
            return
        self.positions[ref] = entry["seq"]
        await self.ws.send_str(
            f'{{"type": "event", "event": {encoded}, "cursor": {json.dumps(self.cursor())}}}'
        )


class StreamHub:
    """Delivers each area's new entries to the subscribers that read the area."""

    def __init__(self, ctx: Context, tail: AreaTail) -> None:
        self.ctx, self.tail = ctx, tail
        self.subscribers: set[Subscriber] = set()
        self._queue: asyncio.Queue[Event] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._queue = self.ctx.bus.subscribe()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            self.ctx.bus.unsubscribe(self._queue)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self.deliver(event)
            except Exception:  # one bad delivery must not stop the hub
                log.exception("stream delivery failed")

    async def deliver(self, event: Event) -> None:
        ref = AreaRef(event.operation_id, event.area)
        readers = [s for s in self.subscribers if ref in s.readable]
        by_position: dict[int, list[Subscriber]] = defaultdict(list)
        for sub in readers:
            if event.seq > sub.positions.get(ref, 0):
                by_position[sub.positions.get(ref, 0)].append(sub)
        encoded: dict[int, str] = {}
        for position, group in by_position.items():
            entries = await self.tail.after((ref.operation_id, ref.area), position, event.seq)
            for entry in entries:
                encoded.setdefault(entry["seq"], json.dumps(entry))
            for sub in group:
                async with sub.lock:
                    for entry in entries:
                        await sub.send(entry, encoded[entry["seq"]])


@routes.get("/api/v1/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    ctx: Context = request.app[CONTEXT]
    cursor = request.query.get("cursor", "")
    areas.decode_cursor(cursor)  # refuse a bad cursor before upgrading
    ws = web.WebSocketResponse(heartbeat=30)
    if not ws.can_prepare(request).ok:  # else aiohttp answers a plain-text 400
        raise BadRequest("stream: expected a WebSocket upgrade (Upgrade: websocket)")
    await ws.prepare(request)
    hub = request.app[HUB]
    sub = Subscriber(ctx, ws, who, bearer_token(request), cursor)
    reader = asyncio.create_task(_drain_client(ws))
    try:
        if await sub.refresh():
            hub.subscribers.add(sub)
            while not ws.closed and not reader.done():
                await asyncio.wait({reader}, timeout=POLL_SECONDS)
                if not reader.done() and not await sub.refresh():
                    break
    finally:
        hub.subscribers.discard(sub)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
