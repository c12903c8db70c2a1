"""The SQLite engine's driver (storage/sqlite_driver.py): statements answer as they do on
sqlite3 itself — rows, row counts, last row ids, errors, rollback — while they run on the loop
without a trip to aiosqlite's thread, await (never block on) a database another connection
holds, and leave checkpoints to a worker thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from opseal.server.storage import sqlite_driver
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


async def test_statements_make_no_trip_to_the_connection_thread(engine, trips):
    """What made a single post expensive: four trips (cursor, execute, fetch, close) per
    statement, ~35 µs of the event loop's time each, and threads fighting the loop for the
    interpreter lock."""
    async with write_transaction(engine) as conn:
        trips.clear()
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        rows = (await conn.execute(text("SELECT name FROM t"))).all()
        assert rows == [("a",)]
    assert trips == []


async def test_a_locked_database_is_awaited_not_waited_for(engine, tmp_path):
    """Another process holding the write lock (a CLI command, a backup restore) makes a write
    transaction wait — while the loop goes on serving — and it proceeds once the lock is
    free; nothing is lost on either side."""
    other = sqlite3.connect(tmp_path / "driver.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name) VALUES ('other')")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def write() -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('ours')"))

    ticking = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # waiting for the lock...
    assert ticks > 20  # ...without holding up the loop
    await asyncio.to_thread(other.execute, "COMMIT")
    await asyncio.wait_for(writing, 5)
    ticking.cancel()
    other.close()
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).scalars().all()
    assert names == ["other", "ours"]


async def test_a_lock_held_past_the_busy_time_fails_the_transaction(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_driver, "BUSY_SECONDS", 0.05)
    other = sqlite3.connect(tmp_path / "driver.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('ours')"))

    with pytest.raises(OperationalError, match="locked"):
        await write()
    other.execute("ROLLBACK")
    other.close()


async def test_checkpoints_run_in_a_worker_thread(engine, tmp_path, monkeypatch):
    """The WAL goes back into the database every CHECKPOINT_EVERY commits, off the loop."""
    monkeypatch.setattr(sqlite_driver, "CHECKPOINT_EVERY", 5)
    threads: list[bool] = []
    original = sqlite_driver._checkpoint

    def checkpoint(path: str) -> None:
        threads.append(threading.current_thread() is threading.main_thread())
        original(path)

    monkeypatch.setattr(sqlite_driver, "_checkpoint", checkpoint)
    database = tmp_path / "driver.db"
    before = database.stat().st_size
    for n in range(12):
        async with write_transaction(engine) as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), {"n": "x" * 5000 + str(n)})
        await asyncio.sleep(0.01)  # the checkpoint thread's turn
    await asyncio.sleep(0.2)
    assert threads  # it ran...
    assert not any(threads)  # ...never on the loop's thread
    assert database.stat().st_size > before + 5000  # the rows reached the database file


async def test_rows_can_be_read_a_few_at_a_time(engine):
    """``fetchmany`` without a size takes the cursor's ``arraysize`` (1, as sqlite3's)."""
    async with write_transaction(engine) as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES (:n)"), [{"n": c} for c in "abc"])
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT name FROM t ORDER BY id"))
        assert result.fetchmany() == [("a",)]
        assert result.fetchmany(5) == [("b",), ("c",)]


@pytest.mark.parametrize(
    ("code", "waits"),
    [
        (5, True),  # SQLITE_BUSY: another connection holds the lock
        (261, True),  # SQLITE_BUSY_RECOVERY
        (517, False),  # SQLITE_BUSY_SNAPSHOT: a read snapshot too old to write from
        (6, False),  # SQLITE_LOCKED: a table locked within this connection, for good
        (262, True),  # SQLITE_LOCKED_SHAREDCACHE
        (1, False),  # any other error
    ],
)
def test_only_a_lock_that_will_go_is_waited_for(code, waits):
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    assert sqlite_driver._worth_waiting(error) is waits
