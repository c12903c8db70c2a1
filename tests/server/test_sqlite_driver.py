"""The SQLite engine's one-trip cursor (storage/sqlite_driver.py): statements answer as they do
on sqlite3 itself — rows, row counts, last row ids, errors, rollback — while each one costs a
single trip to aiosqlite's connection thread."""

from __future__ import annotations

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from opseal.server.storage.db import make_engine, write_transaction


@pytest.fixture
async def engine(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch) -> list[str]:
    """The name of every call aiosqlite hands to a connection's thread."""
    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_rows_counts_and_ids_come_back_as_sqlite_gives_them(engine):
    async with write_transaction(engine) as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.lastrowid == 1
        await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}])
        returned = await conn.execute(text("INSERT INTO t (name) VALUES ('d') RETURNING id, name"))
        assert returned.all() == [(4, "d")]
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 3
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "name"]
        assert result.all() == [(1, "a"), (2, "b!"), (3, "c!"), (4, "d!")]
        assert (await conn.execute(text("SELECT name FROM t WHERE id = 9"))).first() is None


async def test_a_failing_statement_raises_and_its_transaction_leaves_nothing(engine):
    async def insert_twice() -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
            await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))

    with pytest.raises(IntegrityError, match="UNIQUE"):
        await insert_twice()
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        await conn.execute(text("SELECT 1"))  # the connection is still usable


async def test_each_statement_is_one_trip_to_the_connection_thread(engine, trips):
    """What made a single post expensive: four trips (cursor, execute, fetch, close) per
    statement, ~35 µs of the event loop's time each."""
    async with write_transaction(engine) as conn:
        trips.clear()
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        rows = (await conn.execute(text("SELECT name FROM t"))).all()
        assert rows == [("a",)]
        assert trips == ["_run", "_run"]
