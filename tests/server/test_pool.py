"""PostgreSQL connections (design §13): reads run in autocommit, writes in one transaction; a
connection that lay idle in the pool is pinged before a request gets it, one in steady use is
not, and a dead one never fails more than the request that found it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from opseal.client.errors import ApiError
from opseal.server.storage import db

from .conftest import PG_URL, _admin_dsn

pytestmark = pytest.mark.skipif(not PG_URL, reason="OPSEAL_TEST_POSTGRES_URL is not set")

_PID = text("SELECT pg_backend_pid()")


async def _pid(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(_PID)).scalar_one())


async def _kill(url: str, pid: int) -> None:
    """Terminate one backend from outside, as a database restart or an idle timeout would."""
    conn = await asyncpg.connect(_admin_dsn(url))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.fixture
async def engine():
    engine = db.make_engine(PG_URL)
    yield engine
    await engine.dispose()


async def test_reads_take_no_transaction_and_a_write_transaction_is_all_or_nothing(engine):
    """A read's statements each run on their own (no BEGIN or ROLLBACK round trips); a write
    transaction's statements share one transaction, and a failure undoes all of them."""
    clock = text("SELECT now()")
    async with engine.connect() as conn:
        first = (await conn.execute(clock)).scalar_one()
        await asyncio.sleep(0.01)
        assert (await conn.execute(clock)).scalar_one() > first  # each its own transaction
    with pytest.raises(RuntimeError):
        await _failing_write(engine, clock)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT to_regclass('undone')"))).scalar() is None


async def _failing_write(engine, clock) -> None:
    async with db.write_transaction(engine) as conn:
        first = (await conn.execute(clock)).scalar_one()
        await asyncio.sleep(0.01)
        assert (await conn.execute(clock)).scalar_one() == first  # one transaction
        await conn.execute(text("CREATE TABLE undone (id int)"))
        raise RuntimeError("the request failed")


async def test_a_dead_connection_that_lay_idle_is_replaced_before_use(engine, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    dead = await _pid(engine)
    await _kill(PG_URL, dead)
    assert await _pid(engine) != dead  # no error: the ping found it dead


async def test_a_connection_in_steady_use_is_not_pinged_and_a_dead_one_fails_once(
    engine, monkeypatch
):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    dead = await _pid(engine)
    await _kill(PG_URL, dead)
    with pytest.raises(DBAPIError):  # not pinged: the request that takes it fails
        await _pid(engine)
    assert await _pid(engine) != dead  # and the pool has let it go


async def _kill_pooled(database: str) -> int:
    """Terminate the node's pooled connections to ``database`` (not the event bus's
    ``LISTEN`` connection), from a connection to another database; how many."""
    conn = await asyncpg.connect(_admin_dsn(PG_URL))
    try:
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
            "AND pid <> pg_backend_pid() AND query NOT ILIKE 'LISTEN%'", database,
        ))  # fmt: skip
    finally:
        await conn.close()


def _database(operation) -> str:
    return operation.server.ctx.settings.database_url.rsplit("/", 1)[1]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_request_that_finds_its_connection_dead_is_told_to_retry(operation):
    """The database drops the node's connections while they are in steady use (a restart):
    the request that finds one gets 503 ``unavailable`` — retry — not an internal error, and
    the next request is served on a fresh connection."""
    api = operation.actors["customs"].api
    await api.sync("", limit=10)
    assert await _kill_pooled(_database(operation)) > 0
    with pytest.raises(ApiError) as refused:
        await api.sync("", limit=10)
    assert (refused.value.status, refused.value.code) == (503, "unavailable")
    assert (await api.sync("", limit=10)).events is not None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_requests_while_the_database_refuses_connections_are_told_to_retry(
    operation, monkeypatch
):
    """The database stops accepting connections (it is restarting) after the node's pooled
    ones went: requests get 503 ``unavailable`` — retry — not an internal error; once it
    accepts again, they are served."""
    api = operation.actors["customs"].api
    await api.sync("", limit=10)
    name = _database(operation)
    admin = await asyncpg.connect(_admin_dsn(PG_URL))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        assert await _kill_pooled(name) > 0
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # pinged: dead, and refused
        with pytest.raises(ApiError) as refused:
            await api.sync("", limit=10)
        assert (refused.value.status, refused.value.code) == (503, "unavailable")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert (await api.sync("", limit=10)).events is not None
