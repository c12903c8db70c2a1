"""Real-time fan-out of area events to WebSocket subscribers (design §9).

An :class:`Event` says "area X of operation O has new entries up to sequence number N".
Subscribers then read the entries from the database after their cursor, so delivery is in
order and exactly once whatever the bus does. :class:`LocalBus` serves one process (SQLite);
:class:`~opseal.server.bus.postgres.PostgresBus` adds ``LISTEN/NOTIFY`` so several server
nodes on one PostgreSQL database deliver each other's events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["Bus", "Event", "LocalBus"]


@dataclass(frozen=True)
class Event:
    """New entries of an area up to ``seq``; or, with ``kind`` ``"charter"``, charter version
    ``seq`` of the operation was published (``area`` empty)."""

    operation_id: str
    area: str
    seq: int
    kind: str = "entries"
    remote: bool = False
    """Notified by another node: what this node caches about the operation may be older."""


class LocalBus:
    """In-process fan-out to every subscriber queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)

    async def publish(self, event: Event) -> None:
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        for queue in list(self._queues):
            if queue.full():
                # A stalled subscriber re-reads from its cursor; dropping a wake-up is safe.
                continue
            queue.put_nowait(event)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._queues.clear()


Bus = LocalBus
