"""Database engines for SQLite (WAL, the embedded default) and PostgreSQL (asyncpg).

On SQLite, write transactions (:func:`write_transaction`) start with ``BEGIN IMMEDIATE`` so
concurrent writers queue on the write lock instead of failing to upgrade a read lock; reads
start a plain deferred ``BEGIN`` and, thanks to WAL, never wait for writers. PostgreSQL
serialises per-area sequence numbers with row locks (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeAlias

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = [
    "WRITE_INTENT",
    "Record",
    "SchemaError",
    "alembic_config",
    "check_schema",
    "head_revision",
    "make_engine",
    "migrate",
    "ping",
    "schema_status",
    "sqlite_path",
    "write_transaction",
]

WRITE_INTENT = "opseal_write_intent"

# A result row of any width (SQLAlchemy 2.1 types rows by their column types).
Record: TypeAlias = Row[*tuple[Any, ...]]


class SchemaError(Exception):
    """The database schema is missing or older than this server's code."""


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; for SQLite, the folder is created and WAL switched on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # Custom plans for every statement: asyncpg prepares statements, and after five runs
    # PostgreSQL may switch to a generic plan; for the idempotency look-ups (a sender's
    # message ids IN a batch's 500 ids) that plan scanned the whole area by primary key, so
    # ingest slowed as an area grew (design §13). Planning each time costs far less.
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )  # fmt: skip


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    path = url.split(":///", 1)[1] if url.startswith("sqlite") and ":///" in url else ""
    return Path(path.split("?", 1)[0]) if path and not path.startswith(":memory:") else None


def _sqlite_engine(url: str) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None:
        # It holds the audit log's signing key: created for the server's account only.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = create_async_engine(url, connect_args={"timeout": 30})
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.info.get(WRITE_INTENT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it takes the write lock when it begins."""
    async with engine.connect() as conn:
        conn.info[WRITE_INTENT] = True
        try:
            async with conn.begin():
                yield conn
        finally:
            conn.info.pop(WRITE_INTENT, None)


_PING = text("SELECT 1")


async def ping(conn: AsyncConnection) -> None:
    """Raise unless the database answers a trivial query."""
    await conn.execute(_PING)


def alembic_config(url: str) -> Config:
    """An Alembic configuration whose scripts live in the installed ``opseal.migrations``."""
    config = Config()
    config.set_main_option("script_location", str(files("opseal.migrations")))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def head_revision(engine: AsyncEngine) -> str | None:
    """The latest revision the installed migrations define."""
    url = engine.url.render_as_string(hide_password=False)
    return await asyncio.to_thread(_head, url)  # reads the migration scripts from disk


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaError` with the fix unless the database is at the latest revision."""
    url = engine.url.render_as_string(hide_password=False)

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        revision = await connection.run_sync(current)
    head = await asyncio.to_thread(_head, url)  # reads the migration scripts from disk
    if revision != head:
        state = "empty" if revision is None else f"at revision {revision}"
        raise SchemaError(
            f"the database is {state}, not at {head}: run `opseal-server migrate` first"
        )


async def schema_status(engine: AsyncEngine) -> dict[str, object]:
    """Where the database stands against the installed migrations: ``state`` is ``current``,
    ``pending`` (with the migrations ``migrate`` would run, oldest first) or ``newer`` (the
    database was migrated by a later OpSeal version than this one)."""
    url = engine.url.render_as_string(hide_password=False)

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    def plan(revision: str | None) -> tuple[str | None, list[dict[str, str]] | None]:
        scripts = ScriptDirectory.from_config(alembic_config(url))
        head = scripts.get_current_head()
        if revision is not None and scripts.get_revision(revision) is None:
            return head, None
        steps = scripts.iterate_revisions(head, revision or "base")
        found = [{"revision": s.revision, "about": (s.doc or "").strip()} for s in steps]
        return head, [step for step in reversed(found) if step["revision"] != revision]

    async with engine.connect() as connection:
        revision = await connection.run_sync(current)
    try:
        head, pending = await asyncio.to_thread(plan, revision)
    except Exception:  # an unknown revision makes alembic raise while resolving it
        head, pending = await asyncio.to_thread(_head, url), None
    if pending is None:
        return {"state": "newer", "database": revision, "head": head, "pending": []}
    state = "current" if not pending else "pending"
    return {"state": state, "database": revision, "head": head, "pending": pending}


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the latest revision (creates it when empty)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
