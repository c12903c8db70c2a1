"""What every service needs: settings, the engine, the instance's keys, the bus and a clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opseal.crypto.keys import HmacKey, SigningKey

from ..blobstore import ChunkStore, make_chunk_store
from ..bus import Bus, Event
from ..config import Settings
from ..errors import Unavailable
from ..storage import audit
from ..storage import instance as instance_store
from ..storage.db import write_transaction
from .charter_cache import CharterVersions
from .presigning import Presigner

__all__ = ["Context", "Instance", "Principal", "load_instance"]


@dataclass(frozen=True)
class Instance:
    """The instance's identity and server-side keys (the log key signs audit checkpoints)."""

    instance_id: str
    log_key: SigningKey
    token_key: bytes = field(repr=False)

    @cached_property
    def token_hmac(self) -> HmacKey:
        """HMAC-SHA256 under :attr:`token_key`, ready for a hash per request."""
        return HmacKey(self.token_key)


@dataclass(frozen=True)
class Principal:
    """An authenticated device."""

    device_id: str
    org_id: str
    user_id: str
    user_kind: str


@dataclass
class Context:
    """Shared by all services of one server process."""

    settings: Settings
    engine: AsyncEngine
    instance: Instance
    bus: Bus
    clock: Callable[[], float] = time.time
    charters: dict[tuple[str, int], Any] = field(default_factory=dict)
    """Parsed charter versions by (operation, version): immutable once stored."""
    charter_versions: CharterVersions = field(default_factory=CharterVersions)
    """The current charter version per operation, for the stream hub."""
    sessions: dict[bytes, tuple[Principal, int, float]] = field(default_factory=dict)
    """Recently authenticated tokens: (principal, session expiry, monotonic time cached)."""
    session_generation: int = 0
    """Bumped by every logout and revocation of this process: a session read before one is
    not cached after it."""
    groups: dict[Any, Any] = field(default_factory=dict)
    """Single posts waiting to be committed together, by area (:mod:`.group_commit`)."""
    presigner: Presigner = field(default_factory=Presigner)
    """Checks a group's signatures in a child process while the group waits (:mod:`.presigning`)."""
    chunks: ChunkStore = field(init=False)
    """Where blob chunks' bytes live (the ``blob_store`` setting)."""

    def __post_init__(self) -> None:
        self.chunks = make_chunk_store(
            self.settings.blob_store,
            s3_endpoint_url=self.settings.s3_endpoint_url,
            s3_region=self.settings.s3_region,
        )

    def now(self) -> int:
        return int(self.clock())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One database transaction; events published through it go out after commit."""
        tx = Tx(self)
        async with write_transaction(self.engine) as conn:
            tx.conn = conn
            yield tx
        await self._publish(tx)

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[Tx]:
        """A connection on which every statement is its own transaction: PostgreSQL's
        autocommit, for reads and self-committing writes. On SQLite it is a read transaction
        whose writes would be rolled back: read only. Events published through it go out after
        the block returned."""
        tx = Tx(self)
        async with self.engine.connect() as conn:
            tx.conn = conn
            yield tx
        await self._publish(tx)

    async def _publish(self, tx: Tx) -> None:
        for event in tx.events:
            await self.bus.publish(event)

    async def audit(self, **entry: Any) -> None:
        """Record one entry in its own transaction (used for refusals)."""
        async with self.transaction() as tx:
            await tx.audit(**entry)


class Tx:
    """A transaction with its audit entries and post-commit events."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.conn: AsyncConnection = None  # type: ignore[assignment]
        self.events: list[Event] = []
        self.now = ctx.now()

    async def audit(self, **entry: Any) -> None:
        await audit.append(self.conn, [entry], self.now, salt=True)

    def publish(self, event: Event) -> None:
        self.events.append(event)


async def load_instance(engine: AsyncEngine) -> Instance:
    """The instance row written by ``opseal-server init``."""
    async with engine.connect() as conn:
        row = await instance_store.get(conn)
    if row is None:
        raise Unavailable("the instance is not initialised: run `opseal-server init` first")
    return Instance(row.instance_id, SigningKey(row.log_private_key), row.token_key)
