"""Database engines for SQLite (WAL, the embedded default) and PostgreSQL (asyncpg).

On SQLite, write transactions (:func:`write_transaction`) start with ``BEGIN IMMEDIATE`` so
concurrent writers queue on the write lock instead of failing to upgrade a read lock — their
waits awaited, as statements run on the event loop (:mod:`.sqlite_driver`); reads start a
plain deferred ``BEGIN`` and, thanks to WAL, never wait for writers. PostgreSQL
serialises per-area sequence numbers with row locks (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeAlias

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, event, inspect, select, text
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import sqlite_driver

__all__ = [
    "SCHEMA_COMPAT",
    "WRITE_INTENT",
    "Record",
    "SchemaError",
    "alembic_config",
    "check_schema",
    "generic_plans",
    "head_revision",
    "make_engine",
    "migrate",
    "ping",
    "record_compatibility",
    "schema_status",
    "sqlite_path",
    "write_transaction",
]

WRITE_INTENT = "opseal_write_intent"

# A result row of any width (SQLAlchemy 2.1 types rows by their column types).
Record: TypeAlias = Row[*tuple[Any, ...]]


class SchemaError(Exception):
    """The database schema is missing, older than this server's code, or newer by a migration
    that does not keep this code running."""


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; for SQLite, the folder is created and WAL switched on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    # Custom plans for every statement: asyncpg prepares statements, and after five runs
    # PostgreSQL may switch to a generic plan; for the idempotency look-ups (a sender's
    # message ids IN a batch's 500 ids) that plan scanned the whole area by primary key, so
    # ingest slowed as an area grew (design §13). Planning each time costs far less — except
    # for a many-row insert, where every row and its foreign-key check would be planned
    # again: see generic_plans.
    # Reads run each statement on its own (autocommit); write_transaction opens a READ
    # COMMITTED transaction. Under READ COMMITTED every statement sees its own snapshot anyway,
    # so a read loses nothing, and saves the BEGIN and ROLLBACK round trips that wrapped it.
    engine = create_async_engine(
        url, pool_size=10, max_overflow=10, isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )  # fmt: skip
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0
"""How long a pooled PostgreSQL connection may lie unused before it is pinged when taken
again. SQLAlchemy's ``pool_pre_ping`` pinged at every check-out: one more round trip for every
transaction (a group of single posts made ten, design §13). A connection in steady use is
known alive; one that lay idle may have been dropped (a database restart, an idle timeout in
between) and is replaced before a request ever sees it."""


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a connection at check-out only if it lay idle :data:`PING_AFTER_IDLE_SECONDS`;
    a dead one is replaced (SQLAlchemy's "pessimistic, custom" disconnect handling)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # new, or in steady use
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("a pooled connection is dead") from exc
        if not alive:
            raise DisconnectionError("a pooled connection is dead")


_RETURNED = "opseal_returned_at"


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
    # Statements on the loop, waits awaited, checkpoints in a thread (sqlite_driver).
    args = sqlite_driver.CONNECT_ARGS
    engine = create_async_engine(url, connect_args=args, module=sqlite_driver.dbapi())
    sync = engine.sync_engine

    @event.listens_for(sync, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        for pragma in sqlite_driver.PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(sync, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.info.get(WRITE_INTENT, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it takes the write lock when it begins; on
    PostgreSQL it is READ COMMITTED (connections read in autocommit: :func:`make_engine`)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="READ COMMITTED")
        conn.info[WRITE_INTENT] = True
        try:
            async with conn.begin():
                yield conn
        finally:
            conn.info.pop(WRITE_INTENT, None)


_PING = text("SELECT 1")
_GENERIC_PLANS = text("SET LOCAL plan_cache_mode = auto")


async def generic_plans(conn: AsyncConnection) -> None:
    """Let PostgreSQL reuse generic plans until the end of the transaction (no-op on SQLite).

    For a transaction's writes after its look-ups: an insert of many rows runs its prepared
    statement once per row, and under ``force_custom_plan`` (:func:`make_engine`) each row —
    and each row's foreign-key check — was planned anew, which doubled the database's CPU per
    stored message (design §15 "Ingest cost"). Look-ups that need custom plans must come first.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(_GENERIC_PLANS)


async def ping(conn: AsyncConnection) -> None:
    """Raise unless the database answers a trivial query."""
    await conn.execute(_PING)


SCHEMA_COMPAT = "opseal_schema_compat"
"""The table, kept beside ``alembic_version`` by every ``migrate`` run, that says for each
migration applied which earlier code still runs on its schema (``keeps_running``)."""

_compat = Table(
    SCHEMA_COMPAT,
    MetaData(),
    Column("revision", String(32), primary_key=True),
    Column("keeps_running", String(32), nullable=True),
)


def alembic_config(url: str, migrations: str = "") -> Config:
    """An Alembic configuration whose scripts live in the installed ``opseal.migrations`` (or
    in the folder ``migrations``: the ``migrations_path`` setting, for rolling-upgrade tests)."""
    config = Config()
    config.set_main_option("script_location", migrations or str(files("opseal.migrations")))
    config.set_main_option("sqlalchemy.url", url)
    return config


def record_compatibility(connection: Connection, scripts: ScriptDirectory) -> None:
    """Rewrite :data:`SCHEMA_COMPAT` for the database's revision: one row per migration up to
    it, with its module's ``keeps_running`` (the revision before it when the migration only
    expands the schema, so code at that revision still runs; None for a contract step).

    Run by ``migrations/env.py`` after every upgrade or downgrade, inside its transaction, so a
    node whose code does not know the newer migrations still learns from the database whether
    its own head keeps running."""
    revision = MigrationContext.configure(connection).get_current_revision()
    rows = []
    for script in scripts.iterate_revisions(revision, "base") if revision else ():
        keeps = getattr(script.module, "keeps_running", None)
        if keeps is not None and keeps != script.down_revision:
            raise ValueError(
                f"migration {script.revision}: keeps_running must be its down_revision "
                f"({script.down_revision}) or None, not {keeps}"
            )
        rows.append({"revision": script.revision, "keeps_running": keeps})
    _compat.create(connection, checkfirst=True)
    connection.execute(_compat.delete())
    if rows:
        connection.execute(_compat.insert(), rows)


def _keeps_running(connection: Connection, revision: str, head: str | None) -> bool:
    """Whether code at ``head`` runs on a database at the (newer) ``revision``: following the
    recorded ``keeps_running`` marks from ``revision`` back reaches ``head`` through expand-only
    migrations alone."""
    if head is None or not inspect(connection).has_table(SCHEMA_COMPAT):
        return False
    marks = dict(connection.execute(select(_compat.c.revision, _compat.c.keeps_running)).all())
    step: str | None = revision
    while step is not None and step != head:
        step = marks.get(step)
    return step == head


def _head(url: str, migrations: str = "") -> str | None:
    return ScriptDirectory.from_config(alembic_config(url, migrations)).get_current_head()


async def head_revision(engine: AsyncEngine, migrations: str = "") -> str | None:
    """The latest revision the installed migrations define."""
    url = engine.url.render_as_string(hide_password=False)
    return await asyncio.to_thread(_head, url, migrations)  # reads the scripts from disk


async def check_schema(engine: AsyncEngine, migrations: str = "") -> str | None:
    """Raise :class:`SchemaError` with the fix unless this code runs on the database's schema:
    at the latest revision (returns None), or newer but reached from this code's head by
    expand-only migrations (returns a notice for the log: a rolling upgrade is under way)."""
    status = await schema_status(engine, migrations)
    revision, head = status["database"], status["head"]
    if status["state"] == "current":
        return None
    if status["state"] == "pending":
        state = "empty" if revision is None else f"at revision {revision}"
        raise SchemaError(
            f"the database is {state}, not at {head}: run `opseal-server migrate` first"
        )
    if status["keeps_running"]:
        return (
            f"the database is at revision {revision}, newer than this code's {head} by "
            "expand-only migrations that keep it running (a rolling upgrade is under way)"
        )
    raise SchemaError(
        f"the database is at revision {revision}, migrated by a later OpSeal version whose "
        f"migrations do not keep this code ({head}) running: run that version on this node"
    )


async def schema_status(engine: AsyncEngine, migrations: str = "") -> dict[str, object]:
    """Where the database stands against the installed migrations: ``state`` is ``current``,
    ``pending`` (with the migrations ``migrate`` would run, oldest first) or ``newer`` (the
    database was migrated by a later OpSeal version than this one; ``keeps_running`` says
    whether those later migrations only expanded the schema, so this code still runs)."""
    url = engine.url.render_as_string(hide_password=False)

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    def plan(revision: str | None) -> tuple[str | None, list[dict[str, str]] | None]:
        scripts = ScriptDirectory.from_config(alembic_config(url, migrations))
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
        head, pending = await asyncio.to_thread(_head, url, migrations), None
    if pending is None:
        assert revision is not None  # an empty database is never newer
        async with engine.connect() as connection:
            keeps = await connection.run_sync(_keeps_running, revision, head)
        return {"state": "newer", "database": revision, "head": head, "pending": [],
                "keeps_running": keeps}  # fmt: skip
    state = "current" if not pending else "pending"
    return {"state": state, "database": revision, "head": head, "pending": pending}


def migrate(url: str, migrations: str = "") -> None:
    """Upgrade the database at ``url`` to the latest revision (creates it when empty)."""
    from alembic import command

    command.upgrade(alembic_config(url, migrations), "head")
