"""The real-time stream: one WebSocket per device session, resumable from a cursor.

Messages are the types of :mod:`opseal.wire.stream`. Each is
``{"type": "event", "event": {...}, "cursor": "..."}``; the cursor after an
event covers it and everything before, so a client that reconnects with the last cursor it
processed misses nothing and receives nothing twice. ``{"type": "idle", "cursor": ...}``
says the stream has caught up.

Fan-out: one :class:`StreamHub` per process listens to the bus. For each new entry of an area
it reads the entry once (through :class:`~opseal.server.services.tail.AreaTail`), encodes it
once, and writes it to every subscriber that reads the area — no task wake-up or query per
subscriber. The hub also reads every area's latest sequence number every
:data:`POLL_SECONDS` (one query per node), so a lost wake-up delays but never loses an entry.
When a commit changes an area's roster, the subscribers it concerns re-read their areas at
once; so do, before anything more is written to them, the subscribers whose areas were read
under an older charter version than the operation's current one (a version may take a role's
read right away: issue 12). Besides, every :data:`REFRESH_SECONDS` the hub re-checks all of
its subscribers at once (:meth:`StreamHub.sweep_once`): each token (a revoked device stops
receiving; sessions are cached for a second, so streams of one session cost one look-up), and
the areas of all devices in one roster query, one membership read per operation and
organisation and one read of the charter versions. Only the subscribers for which something
changed (or that are behind an area) are poked and refresh themselves, as above; a
per-subscriber refresh every 15 s cost six queries each — with 500 streams a third of the
node's CPU, which delayed the fan-out.

The operation's current charter version comes from the process's cache
(:class:`~opseal.server.services.charter_cache.CharterVersions`), not a query per delivery. On
the node that publishes a version the cache is exact: it is bypassed from before the commit
until after it. Entries another node stored (a notification from it) are checked against the
database's version, read after the entry was committed there, so a version published anywhere
before an entry was stored is never missed; the cache serves this node's own entries. Other
nodes' ``charter`` bus events (and the poll, for a lost one) drop the cached version, and
poke the subscribers under an older one (design §15).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio import FIRST_COMPLETED
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import Gauge, Histogram

from opseal.wire import stream as messages
from opseal.wire.decode import encode
from opseal.wire.errors import ErrorDetail
from opseal.wire.operations import Event as WireEvent

from ..bus import Event
from ..errors import BadRequest, OpSealError, Unavailable
from ..services import areas, identity
from ..services.areas import AreaRef
from ..services.base import Context, Principal
from ..services.tail import AreaTail
from ..storage import areas as area_store
from ..storage import operations as operation_store
from .auth import STREAM_PROTOCOL, bearer_token, principal
from .keys import CONTEXT
from .parse import typed
from .routing import EndpointRoutes

__all__ = [
    "CLOSE_SECONDS",
    "HUB",
    "POLL_SECONDS",
    "REFRESH_SECONDS",
    "StreamHub",
    "close_streams",
    "drain",
    "encode_event",
    "routes",
]

routes = EndpointRoutes()
log = structlog.get_logger("opseal.stream")
FANOUT_SECONDS = Histogram(
    "opseal_stream_fanout_seconds",
    "Time to write an area's new entries to all of its subscribers on this node",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SUBSCRIBERS = Gauge("opseal_stream_subscribers", "Open WebSocket streams on this node")
POLL_SECONDS = 5.0
REFRESH_SECONDS = 15.0
SWEEP_BATCH = 500
"""Subscribers re-checked per roster query."""
CLOSE_SECONDS = 3.0
"""On shutdown, how long the streams get to close before they are dropped."""
RECONNECT_HINT = b"server shutting down; reconnect with your cursor"
DRAIN_HINT = b"node draining; reconnect with your cursor"
BATCH = 500


def encode_event(entry: dict[str, Any]) -> bytes:
    """An entry as the JSON of a wire ``Event``, encoded once for every subscriber."""
    return encode(typed(entry, WireEvent))


def _frame(encoded_event: bytes, cursor: str) -> bytes:
    """A ``StreamEvent`` message around an already encoded event (fields as its type has).
    A cursor is base64url, so its JSON string is itself in quotes."""
    return b'{"type":"event","event":%b,"cursor":"%b"}' % (encoded_event, cursor.encode())


class Subscriber:
    """One stream: its socket, the areas it may read and its position in each."""

    def __init__(
        self, ctx: Context, ws: web.WebSocketResponse, who: Principal, token: str, cursor: str
    ) -> None:
        self.ctx, self.ws, self.who, self.token = ctx, ws, who, token
        self.positions = areas.decode_cursor(cursor)
        self.readable: frozenset[AreaRef] = frozenset()
        self._order: list[tuple[AreaRef, str]] = []  # areas.cursor_order(self.readable)
        self._cursor: str | None = None  # the cursor of _order and positions, once encoded
        self.charter_versions: dict[str, int] = {}
        """The charter version of each operation when :attr:`readable` was computed."""
        self.lock = asyncio.Lock()
        self.poke = asyncio.Event()

    def stale(
        self, readable: frozenset[AreaRef], versions: dict[str, int], latest: dict[AreaRef, int]
    ) -> bool:
        """Whether :meth:`refresh` would change anything, given the areas the device may read
        now, the operations' current charter versions and each area's latest entry."""
        return (
            readable != self.readable
            or any(versions.get(op) != version for op, version in self.charter_versions.items())
            or any(self.positions.get(ref, 0) < latest.get(ref, 0) for ref in self.readable)
        )

    def cursor(self) -> str:
        if self._cursor is None:
            self._cursor = areas.encode_cursor_of(self._order, self.positions)
        return self._cursor

    async def refresh(self, latest: dict[AreaRef, int] | None = None) -> bool:
        """Re-check the token and the readable areas, then catch up from the database when
        an area is new to this stream or behind ``latest`` (always, without ``latest``)."""
        try:
            await identity.authenticate(self.ctx, self.token)
        except OpSealError as error:
            detail = ErrorDetail(code=error.code, message=error.message, details=error.details)
            await self.ws.send_str(encode(messages.StreamError(error=detail)).decode())
            return False
        before = self.readable
        async with self.ctx.engine.connect() as conn:
            # Versions first: a version published meanwhile makes the next delivery re-check.
            rostered = await area_store.areas_of_device(conn, self.who.device_id)
            versions = await _charter_versions(conn, {op for op, _ in rostered})
            readable = frozenset(await areas.readable_areas(self.ctx, conn, self.who))
        self.readable, self.charter_versions = readable, versions
        self._order, self._cursor = areas.cursor_order(readable), None
        behind = latest is None or any(
            ref not in before or self.positions.get(ref, 0) < latest.get(ref, 0)
            for ref in self.readable
        )
        if behind:
            await self.catch_up()
        return True

    async def catch_up(self) -> None:
        async with self.lock:
            while True:
                page = await areas.sync(self.ctx, self.who, self.cursor(), BATCH)
                for entry in page["events"]:
                    await self.send(entry, encode_event(entry))
                if not page["more"]:
                    break
            idle = messages.StreamIdle(cursor=self.cursor())
            await self.ws.send_str(encode(idle).decode())

    async def send(
        self,
        entry: dict[str, Any],
        encoded: bytes,
        frames: dict[str, tuple[str, bytes]] | None = None,
    ) -> None:
        """Send one entry unless already sent (the caller holds :attr:`lock`). ``frames``
        shares the work among the subscribers of one delivery: a cursor names every area of
        the stream and its position, so the subscribers that had the same cursor before this
        entry have the same one after it, and get the same frame (keyed by the cursor before)."""
        ref = AreaRef(entry["operation_id"], entry["area"])
        seq = entry["seq"]
        if seq <= self.positions.get(ref, 0) or self.ws.closed:
            return
        before = self.cursor()
        shared = None if frames is None else frames.get(before)
        self.positions[ref] = seq
        if shared is None:
            self._cursor = None
            shared = self.cursor(), _frame(encoded, self.cursor())
            if frames is not None:
                frames[before] = shared
        self._cursor, frame = shared
        await self.ws.send_frame(frame, WSMsgType.TEXT)


class StreamHub:
    """Delivers each area's new entries to the subscribers that read the area."""

    def __init__(self, ctx: Context, tail: AreaTail) -> None:
        self.ctx, self.tail = ctx, tail
        self.subscribers: set[Subscriber] = set()
        self._queue: asyncio.Queue[Event] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.latest: dict[AreaRef, int] = {}
        self.delivered: dict[AreaRef, int] = {}
        """Each area's entries up to here were written to all readers (deliveries finished),
        unlike :attr:`latest`, which a delivery in flight has already moved on."""
        self.draining = False
        """Set by :func:`drain`: new streams are refused (503), other requests still served."""

    def start(self) -> None:
        self._queue = self.ctx.bus.subscribe()
        self._tasks = [
            asyncio.create_task(self._run()),
            asyncio.create_task(self._every(POLL_SECONDS, self.poll_once, "stream poll failed")),
            asyncio.create_task(
                self._every(REFRESH_SECONDS, self.sweep_once, "stream re-check failed")
            ),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue is not None:
            self.ctx.bus.unsubscribe(self._queue)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                if event.kind == "charter":
                    self._charter_published(event.operation_id, event.seq)
                else:
                    await self.deliver(event)
            except Exception:  # one bad delivery must not stop the hub
                log.exception("stream delivery failed")

    @staticmethod
    async def _every(seconds: float, job: Callable[[], Awaitable[None]], failure: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception(failure)

    async def sweep_once(self) -> None:
        """Re-check every subscriber's token and readable areas, in a few queries for up to
        :data:`SWEEP_BATCH` subscribers; poke those whose refresh would change something."""
        subscribers = [sub for sub in self.subscribers if not sub.ws.closed]
        for start in range(0, len(subscribers), SWEEP_BATCH):
            await self._sweep(subscribers[start : start + SWEEP_BATCH])

    async def _sweep(self, batch: list[Subscriber]) -> None:
        found = await identity.authenticate_many(self.ctx, {sub.token for sub in batch})
        live = []
        for sub in batch:
            if isinstance(found[sub.token], OpSealError):
                sub.poke.set()  # its own refresh tells the client why, and ends the stream
            else:
                live.append(sub)
        async with self.ctx.engine.connect() as conn:
            # Versions first, as in Subscriber.refresh.
            versions = await operation_store.current_versions(conn)
            readable = await areas.readable_areas_of(self.ctx, conn, [sub.who for sub in live])
        for sub in live:
            # Against finished deliveries only: a stream merely waiting for one in flight is
            # not behind, and poking them all would send every stream to the database.
            if sub.stale(frozenset(readable[sub.who.device_id]), versions, self.delivered):
                sub.poke.set()

    async def poll_once(self) -> None:
        """Deliver what every area holds beyond what this node saw, after dropping cached
        charter versions older than the database's (a lost ``charter`` notification)."""
        async with self.ctx.engine.connect() as conn:
            rows = await area_store.heads(conn)
            # After the heads: a version committed before any entry seen is seen.
            versions = await operation_store.current_versions(conn)
        known = self.ctx.charter_versions.known()
        for operation_id, version in versions.items():
            if known.get(operation_id, version) != version:
                self._charter_published(operation_id, version)
        for row in rows:
            if row.next_seq > self.latest.get(AreaRef(row.operation_id, row.area), 0):
                await self.deliver(Event(row.operation_id, row.area, row.next_seq))

    async def deliver(self, event: Event) -> None:
        started = time.perf_counter()
        if await self._deliver(event):
            FANOUT_SECONDS.observe(time.perf_counter() - started)

    async def _deliver(self, event: Event) -> int:
        """Write the area's new entries to its subscribers; returns how many were written to."""
        ref = AreaRef(event.operation_id, event.area)
        self.latest[ref] = max(self.latest.get(ref, 0), event.seq)
        readers = [s for s in self.subscribers if ref in s.readable]
        current = None
        if readers:
            current = await self._current_charter(ref.operation_id, from_db=event.remote)
            readers = _same_charter(ref.operation_id, readers, current)
        by_position: dict[int, list[Subscriber]] = defaultdict(list)
        for sub in readers:
            if event.seq > sub.positions.get(ref, 0):
                by_position[sub.positions.get(ref, 0)].append(sub)
        encoded: dict[int, bytes] = {}
        frames: dict[int, dict[str, tuple[str, bytes]]] = defaultdict(dict)
        for position, group in by_position.items():
            # Up to this event only: a later entry may have been stored under a charter
            # version published after the check above; its own event checks it.
            entries = [
                entry
                for entry in await self.tail.after(
                    (ref.operation_id, ref.area), position, event.seq
                )
                if entry["seq"] <= event.seq
            ]
            for entry in entries:
                if entry["seq"] not in encoded:
                    encoded[entry["seq"]] = encode_event(entry)
            for sub in group:
                async with sub.lock:
                    # Checked again with the lock: a refresh that ran during the awaits
                    # above may have taken the area away (a new charter version it read).
                    if (
                        ref not in sub.readable
                        or sub.charter_versions.get(ref.operation_id) != current
                    ):
                        sub.poke.set()
                        continue
                    with contextlib.suppress(ConnectionResetError):  # it left meanwhile
                        for entry in entries:
                            await sub.send(entry, encoded[entry["seq"]], frames[entry["seq"]])
            if any(entry["kind"] == "commit" for entry in entries):
                await self._roster_changed(ref)
        self.delivered[ref] = max(self.delivered.get(ref, 0), event.seq)
        return sum(len(group) for group in by_position.values())

    def _charter_published(self, operation_id: str, version: int) -> None:
        """Version ``version`` of the operation exists (published here or on another node):
        read the current version again, and let the subscribers under an older one re-read
        their areas now rather than at the next delivery."""
        self.ctx.charter_versions.forget(operation_id)
        for sub in self.subscribers:
            if sub.charter_versions.get(operation_id, version) < version:
                sub.poke.set()

    async def _current_charter(self, operation_id: str, *, from_db: bool = False) -> int | None:
        """The operation's current charter version: cached (design §15), else — or when
        ``from_db`` — read."""
        cache = self.ctx.charter_versions
        current = None if from_db else cache.get(operation_id)
        if current is None:
            generation = cache.generation(operation_id)
            async with self.ctx.engine.connect() as conn:
                current = await operation_store.charter_version(conn, operation_id)
            if current is not None:
                cache.remember(operation_id, current, generation)
        return current

    async def _roster_changed(self, ref: AreaRef) -> None:
        """Subscribers joining or leaving the area's roster re-read their areas now."""
        async with self.ctx.engine.connect() as conn:
            members = await area_store.roster(conn, ref.operation_id, ref.area)
        for sub in self.subscribers:
            if (sub.who.device_id in members) != (ref in sub.readable):
                sub.poke.set()


HUB = web.AppKey("hub", StreamHub)


async def drain(app: web.Application) -> None:
    """Drain this node (SIGUSR1, before a stop): ``/readyz`` and new streams answer 503 (nginx
    passes a refused stream to another node), open streams are closed with 1012 and a
    reconnect hint, and every other request is still served until the node stops."""
    app[HUB].draining = True
    await close_streams(app, DRAIN_HINT)
    log.warning("node draining: streams closed, new streams refused")


async def close_streams(app: web.Application, hint: bytes = RECONNECT_HINT) -> None:
    """On shutdown, close every open stream at once with 1012 (service restart) and a
    reconnect hint, so that the server stops in seconds: a client resumes from its cursor,
    later or on another node, and misses nothing."""
    subscribers = list(app[HUB].subscribers)
    closing = [
        asyncio.ensure_future(s.ws.close(code=WSCloseCode.SERVICE_RESTART, message=hint))
        for s in subscribers
    ]
    if closing:
        _, late = await asyncio.wait(closing, timeout=CLOSE_SECONDS)
        for task in late:  # a peer that never answered the close: drop it
            task.cancel()
    log.info("streams closed for shutdown", streams=len(subscribers))


@routes.endpoint("stream")
async def stream(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    ctx: Context = request.app[CONTEXT]
    cursor = request.query.get("cursor", "")
    areas.decode_cursor(cursor)  # refuse a bad cursor before upgrading
    hub = request.app[HUB]
    if hub.draining:
        raise Unavailable("stream: this node is draining; reconnect with your cursor")
    # Entries are mostly ciphertext: compressing them costs CPU per subscriber and saves little.
    ws = web.WebSocketResponse(heartbeat=30, compress=False, protocols=(STREAM_PROTOCOL,))
    if not ws.can_prepare(request).ok:  # else aiohttp answers a plain-text 400
        raise BadRequest("stream: expected a WebSocket upgrade (Upgrade: websocket)")
    await ws.prepare(request)
    sub = Subscriber(ctx, ws, who, bearer_token(request), cursor)
    reader = asyncio.create_task(_drain_client(ws))
    try:
        # Join the hub before the first catch-up: an entry stored meanwhile reaches the
        # subscriber through the hub (which waits for the catch-up's lock), never later.
        hub.subscribers.add(sub)
        SUBSCRIBERS.set(len(hub.subscribers))
        if hub.draining:  # began while this stream was being opened
            await ws.close(code=WSCloseCode.SERVICE_RESTART, message=DRAIN_HINT)
        elif await sub.refresh():
            while not ws.closed and not reader.done():
                poked = asyncio.ensure_future(sub.poke.wait())
                # The hub pokes: a roster or charter change, or its periodic re-check.
                await asyncio.wait({reader, poked}, return_when=FIRST_COMPLETED)
                poked.cancel()
                sub.poke.clear()
                if not reader.done() and not await sub.refresh(hub.latest):
                    break
    except ConnectionResetError:
        pass  # the client went away, or the server closed the stream to shut down
    finally:
        hub.subscribers.discard(sub)
        SUBSCRIBERS.set(len(hub.subscribers))
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


def _same_charter(
    operation_id: str, readers: list[Subscriber], current: int | None
) -> list[Subscriber]:
    """The readers whose areas were read under the operation's ``current`` charter version;
    the others are left out of this delivery and re-read their areas (and catch up) now.
    Entries another node stored are checked against the database's version (the caller
    reads it): this node's cache may not have heard of a version that node published first."""
    fresh = []
    for sub in readers:
        if sub.charter_versions.get(operation_id) == current:
            fresh.append(sub)
        else:
            sub.poke.set()
    return fresh


async def _charter_versions(conn: Any, operation_ids: set[str]) -> dict[str, int]:
    versions = {}
    for operation_id in operation_ids:
        version = await operation_store.charter_version(conn, operation_id)
        if version is not None:
            versions[operation_id] = version
    return versions


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
