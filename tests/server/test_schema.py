"""The migrations build exactly the tables the code declares, and the server refuses to run
on a database they have not built."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import opseal.migrations as opseal_migrations
from opseal.server.config import Settings
from opseal.server.http.app import create_app
from opseal.server.storage.db import SCHEMA_COMPAT, SchemaError, check_schema, make_engine, migrate
from opseal.server.storage.tables import metadata

from .conftest import BACKENDS, fresh_database

SERVER = Path(sys.executable).parent / "opseal-server"
FIX = "run `opseal-server migrate`"


@pytest.fixture(params=BACKENDS)
async def empty_url(request, tmp_path) -> AsyncIterator[str]:
    """A database with no tables at all, on each backend."""
    async for url in fresh_database(request.param, tmp_path):
        yield url


def _differences(connection) -> list:  # type: ignore[no-untyped-def]
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True,
              "include_name": lambda name, kind, _: kind != "table" or name != SCHEMA_COMPAT},
    )  # fmt: skip
    return compare_metadata(context, metadata)


async def test_migrated_schema_matches_the_tables_the_code_declares(empty_url):
    """`alembic upgrade head` on an empty database leaves no difference from the models."""
    await asyncio.to_thread(migrate, empty_url)
    engine = make_engine(empty_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert differences == []
    assert tables == set(metadata.tables) | {"alembic_version", SCHEMA_COMPAT}


async def test_migrating_twice_changes_nothing(empty_url):
    """A second `migrate` on a migrated database passes its schema check unchanged."""
    await asyncio.to_thread(migrate, empty_url)
    await asyncio.to_thread(migrate, empty_url)
    engine = make_engine(empty_url)
    try:
        await check_schema(engine)
    finally:
        await engine.dispose()


async def test_schema_check_refuses_an_empty_database(empty_url):
    """The schema check on an unmigrated database names the command that fixes it."""
    engine = make_engine(empty_url)
    try:
        with pytest.raises(SchemaError, match=f"database is empty.*{FIX}"):
            await check_schema(engine)
    finally:
        await engine.dispose()


async def test_app_refuses_to_start_on_an_unmigrated_database(empty_url):
    """Start-up of the application fails with the migrate instruction and serves nothing."""
    runner = web.AppRunner(create_app(Settings(database_url=empty_url)))
    try:
        with pytest.raises(SchemaError, match=FIX):
            await runner.setup()
    finally:
        await runner.cleanup()


def test_serve_exits_1_on_an_empty_sqlite_file(tmp_path):
    """`opseal-server serve` on an empty SQLite file exits 1 and says to run the migration."""
    database = tmp_path / "empty.db"
    database.touch()
    env = {
        **os.environ,
        "OPSEAL_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "OPSEAL_PORT": "1",  # never bound: the schema check comes first
    }
    result = subprocess.run(
        [str(SERVER), "serve"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert FIX in result.stderr
    assert "serving on" not in result.stdout
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


_FAILING = '''"""A migration that fails after its first statement."""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = None
keeps_running = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    raise RuntimeError("the migration failed halfway")


def downgrade() -> None:
    op.drop_table("half_done")
'''


async def test_a_migration_that_fails_halfway_leaves_nothing_behind(empty_url, tmp_path):
    """A migration is one transaction: if it fails after some of its statements, none of them
    stays, nor its revision — a re-run starts from a clean state (on PostgreSQL too, whose
    engine reads in autocommit)."""
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    shutil.copy(Path(opseal_migrations.__file__).parent / "env.py", scripts / "env.py")
    (scripts / "versions" / "9001_fails.py").write_text(_FAILING)
    with pytest.raises(RuntimeError, match="halfway"):
        await asyncio.to_thread(migrate, empty_url, str(scripts))
    engine = make_engine(empty_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert "half_done" not in tables
    assert "alembic_version" not in tables or not await _revision(empty_url)


async def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
