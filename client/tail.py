"""``Follower``: the real-time tail of a device's areas over the server's event stream.

Every streamed entry goes through the :class:`~opseal.client.verifier.Verifier`, the sync
cursor advances after each, and the handler sees each newly verified message. A cut
connection, a restarting server or a proxy's 5xx is resumed from the cursor with backoff; an
expired token is renewed; a revoked device stops with the server's refusal. It depends on the
session, the store and the verifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import msgspec

from opseal.wire.operations import Event
from opseal.wire.stream import StreamError, StreamEvent, StreamMessage

from .errors import (
    ClientError,
    MalformedAnswerError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    error_for,
)
from .outbox import OnWait
from .session import Session
from .store import Store, StoredMessage
from .verifier import SyncReport, Verifier

__all__ = ["Follower"]


class Follower:
    """Follows the event stream, verifying each entry as it arrives."""

    def __init__(self, session: Session, store: Store, verifier: Verifier) -> None:
        self._session, self._store, self._verifier = session, store, verifier

    async def tail(
        self,
        handler: Callable[[StoredMessage], Any],
        *,
        stop: asyncio.Event | None = None,
        on_wait: OnWait | None = None,
    ) -> None:
        """Follow this device's areas in real time until ``stop`` is set: every entry is
        verified through :meth:`ingest`, the sync cursor advances after each, and
        ``handler(message)`` (plain or async) sees each newly verified message. A cut
        connection is resumed from the cursor, with backoff, telling ``on_wait(delay,
        inf, error)`` before each wait (it never gives up)."""
        stopper = asyncio.ensure_future((stop or asyncio.Event()).wait())
        follower = asyncio.ensure_future(self._follow(handler, on_wait))
        try:
            await asyncio.wait({stopper, follower}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            follower.cancel()
            await asyncio.gather(stopper, follower, return_exceptions=True)
            self._verifier.save_tracker()
        if not follower.cancelled() and follower.exception() is not None:
            raise follower.exception()  # type: ignore[misc]

    async def _follow(
        self, handler: Callable[[StoredMessage], Any], on_wait: OnWait | None
    ) -> None:
        delay = 0.5
        while True:
            cut: TransportError | None = None
            try:
                cursor = (self._store.get("sync-cursor") or b"").decode()
                async for item in self._session.api.stream(cursor):
                    delay = 0.5
                    await self._tail_item(item, handler)
            except MalformedAnswerError as exc:  # the rest of this connection is not trusted
                self._store.warn("", "", None, "stream-malformed", str(exc))
            except (TransportError, ServerError, UnavailableError, RateLimitedError) as exc:
                # a cut, a restarting server or a proxy's 5xx: reconnect after the delay
                cut = exc if isinstance(exc, TransportError) else TransportError(str(exc))
            except UnauthorizedError:
                with contextlib.suppress(TransportError):
                    await (
                        self._session.login()
                    )  # a revoked device stops here with the server's refusal
            if cut is not None and on_wait is not None:
                on_wait(delay, float("inf"), cut)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _tail_item(
        self, item: StreamMessage, handler: Callable[[StoredMessage], Any]
    ) -> None:
        if isinstance(item, StreamError):
            raise error_for(401, {"error": msgspec.to_builtins(item.error)})
        message = await self._ingest_new(item.event) if isinstance(item, StreamEvent) else None
        self._store.put("sync-cursor", item.cursor.encode())
        self._verifier.save_tracker()
        if message is not None:
            result = handler(message)
            if inspect.isawaitable(result):
                await result

    async def _ingest_new(self, entry: Event) -> StoredMessage | None:
        """Ingest one streamed entry; the message it verified, if it was a new one."""
        op, area, seq = entry.operation_id, entry.area, entry.seq
        if not self._verifier.knows(op):
            with contextlib.suppress(ClientError):
                await self._verifier.charter(
                    op
                )  # so post rights are checked from the first message
        report = SyncReport()
        await self._verifier.ingest(entry, report)
        if not report.messages:
            return None
        return next(
            (m for m in self._store.messages(op, area, after=seq - 1) if m.seq == seq), None
        )
