"""PostgreSQL ``LISTEN/NOTIFY`` fan-out, so server nodes deliver each other's events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import asyncpg
import structlog

from . import Event, LocalBus

__all__ = ["CHANNEL", "PostgresBus"]

CHANNEL = "opseal_events"
log = structlog.get_logger("opseal.bus")


class PostgresBus(LocalBus):
    """A :class:`LocalBus` whose events also travel through PostgreSQL to other nodes."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._listener: asyncpg.Connection | None = None
        self._sender: asyncpg.Connection | None = None
        self._pending: dict[tuple[str, str, str], Event] = {}
        self._notifier: asyncio.Task[None] | None = None
        self.node = os.urandom(8).hex()
        """Names this node in its notifications: the listener hears its own too, and skips
        them (they were delivered here when published)."""

    async def start(self) -> None:
        self._listener = await asyncpg.connect(self.dsn)
        await self._listener.add_listener(CHANNEL, self._on_notify)
        self._sender = await asyncpg.connect(self.dsn)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("n") == self.node:
                return
            kind = str(data.get("k", "entries"))
            self.deliver(Event(data["o"], data["a"], int(data["s"]), kind, remote=True))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed notification")

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` here and have it notified to the other nodes. The notification
        is sent by a task of its own (:meth:`_notify`): a request is answered once its
        transaction committed, not one more round trip later — other nodes' subscribers hear
        of it a round trip after that. Notifications queued while one is on its way go out
        together in one statement, one per area and kind: an event means "up to ``seq``", so
        the highest stands for the others, and the queue holds at most one per area."""
        self.deliver(event)
        key = (event.operation_id, event.area, event.kind)
        queued = self._pending.get(key)
        if queued is None or queued.seq < event.seq:
            self._pending[key] = event
        if self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        """Send the queued notifications until none is left."""
        while self._pending and self._sender is not None:
            events, self._pending = list(self._pending.values()), {}
            payloads = [
                json.dumps(
                    {"o": e.operation_id, "a": e.area, "s": e.seq, "k": e.kind, "n": self.node}
                )
                for e in events
            ]
            try:
                await self._sender.execute(_NOTIFY, CHANNEL, payloads)
            except Exception:  # the connection lost, the database restarting
                # Subscribers also poll; a lost notification only delays delivery.
                log.warning("could not notify other nodes", exc_info=True)

    async def close(self) -> None:
        """Send what was published before the node stopped (for at most
        :data:`CLOSE_SECONDS`), then close the connections."""
        if self._notifier is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._notifier), CLOSE_SECONDS)
        sender, self._sender = self._sender, None
        for conn in (self._listener, sender):
            if conn is not None:
                await conn.close()
        await super().close()


CLOSE_SECONDS = 5.0
_NOTIFY = (
    "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS p(payload, n)"
    " ORDER BY n"
)
