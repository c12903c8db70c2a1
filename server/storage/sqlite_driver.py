"""SQLAlchemy's aiosqlite adapter with statements run on the event loop, never waiting there.

aiosqlite runs each SQLite connection in a thread of its own and hands it every call through a
queue; the answer comes back through the event loop's self-pipe. SQLAlchemy's adapter made
four such trips per statement (open a cursor, execute, fetch, close), each ~35 µs of the
loop's CPU, and every waking thread then fought the loop for the interpreter lock — far more
than SQLite's own work for the small statements a request runs: a few microseconds, from its
page cache, with no ``fsync`` at commit (WAL, ``synchronous=NORMAL``). So here a statement runs
where it is asked for, reads all its rows and closes its cursor at once (design §13 "SQLite
statements on the loop"):

- **It never waits on the loop.** SQLite's busy handler is off (``busy_timeout=0``): a
  statement that finds the database locked (another process writing, or a transaction of
  this one that is awaiting something) gets ``SQLITE_BUSY`` at once, and :func:`_patiently`
  *awaits* a pause and tries again, up to :data:`BUSY_SECONDS` as the busy handler did.
- **Checkpoints leave the loop**: SQLite copies the WAL back into the database at the commit
  that finds it long, ~20 ms with its ``fsync``. Automatic checkpoints are off on these
  connections; every :data:`CHECKPOINT_EVERY` commits a passive checkpoint runs in a worker
  thread on a connection of its own (:func:`_checkpoint`), which blocks no reader or writer.
- Connections are still opened and closed in aiosqlite's thread, and server-side cursors
  (``stream``, for backups) keep aiosqlite's own, reading in that thread (with the same
  patience for a locked database). One connection is never used by two tasks at once
  (SQLAlchemy's rule), so a statement on the loop never meets one of those in the thread.

The classes are SQLAlchemy's (``AsyncAdapt_aiosqlite_*``, 2.1); :func:`dbapi` is handed to
``create_async_engine(module=...)``, the documented way to give a dialect another DBAPI module.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import aiosqlite
import structlog
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["BUSY_SECONDS", "CHECKPOINT_EVERY", "CONNECT_ARGS", "PRAGMAS", "dbapi"]

log = structlog.get_logger("opseal.db")

BUSY_SECONDS = 30.0
"""How long a statement keeps trying while the database is locked (SQLite's busy timeout
before)."""
CHECKPOINT_EVERY = 64
"""Commits between two passive checkpoints (a group commit of single posts is one commit)."""
CONNECT_ARGS = {"timeout": 0, "check_same_thread": False}
"""For ``sqlite3.connect``: no busy handler (waits are awaited), and a connection opened in
aiosqlite's thread may run statements on the loop's."""
PRAGMAS = ("busy_timeout=0", "wal_autocheckpoint=0")
"""Set on every connection, after the WAL and durability settings."""

_Result = tuple[Any, int, int | None, list[Any]]
_BUSY_SNAPSHOT = 517  # a read transaction's snapshot is too old to write: waiting cannot help
_LOCKED_SHAREDCACHE = 262  # another connection's lock on a shared-cache table: it will go


def _worth_waiting(exc: sqlite3.OperationalError) -> bool:
    """Whether the database was only busy — another connection holds the lock it needs, which
    goes — rather than locked for good (a table locked within this connection, a snapshot too
    old to write from), where waiting cannot help."""
    code = getattr(exc, "sqlite_errorcode", 0)
    if code & 0xFF == sqlite3.SQLITE_BUSY:
        return code != _BUSY_SNAPSHOT
    return code == _LOCKED_SHAREDCACHE


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """The statement's description, row count, last row id and all of its rows."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


async def _nothing() -> None:
    """Awaited once per statement: SQLAlchemy's async engine requires each call to await."""


def _pauses() -> Iterator[float]:
    """The pauses between tries while the database is locked: 1 ms doubling to 50 ms, for
    :data:`BUSY_SECONDS` in all."""
    waited, pause = 0.0, 0.001
    while waited < BUSY_SECONDS:
        yield pause
        waited += pause
        pause = min(pause * 2, 0.05)


def _next_pause(exc: sqlite3.OperationalError, pauses: Iterator[float]) -> float:
    """How long to wait before trying again after ``exc``; raises it when waiting cannot help
    or the time is up."""
    pause = next(pauses, None) if _worth_waiting(exc) else None
    if pause is None:
        raise exc
    return pause


def _patiently(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """:func:`_run` on the loop; while the database is locked, await a pause and try again
    (within a greenlet of SQLAlchemy's async engine)."""
    await_(_nothing())
    pauses = _pauses()
    while True:
        try:
            return _run(conn, operation, parameters, many)
        except sqlite3.OperationalError as exc:
            pause = _next_pause(exc, pauses)
        await_(asyncio.sleep(pause))


class _LoopCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs on the loop and is read and closed at once."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor is opened (the base class would make a trip for it).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # close() then has nothing to close
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # as sqlite3's cursors: what fetchmany() takes without a size

    @property
    def description(self) -> Any:
        return self._description

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def nextset(self) -> None:
        """SQLite has one result set per statement, read whole already."""

    def setinputsizes(self, *inputsizes: Any) -> None:
        """Nothing to do for SQLite."""

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        """Nothing stays open after a statement."""

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._statement(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._statement(operation, seq_of_parameters, many=True)

    def _statement(self, operation: str, parameters: Any, *, many: bool) -> None:
        try:
            found = _patiently(self._connection._conn, operation, parameters, many)
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = found
        self._rows = collections.deque(rows)


class _StreamCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """aiosqlite's server-side cursor (``stream``: backups), reading in its thread, with the
    busy handler's patience: a locked database is awaited as :func:`_patiently` does."""

    __slots__ = ()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        pauses = _pauses()
        while True:
            try:
                return await super()._execute_async(operation, parameters)
            except sqlite3.OperationalError as exc:
                pause = _next_pause(exc, pauses)
            await asyncio.sleep(pause)


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_checkpoints",)
    _cursor_cls = _LoopCursor  # type: ignore[assignment]  # a subclass; mypy sees the slot
    _ss_cursor_cls = _StreamCursor

    def __init__(self, dbapi: Any, connection: Any, checkpoints: _Checkpoints) -> None:
        super().__init__(dbapi, connection)
        self._checkpoints = checkpoints

    def commit(self) -> None:
        conn: sqlite3.Connection | None = self._connection._connection
        if conn is None or not conn.in_transaction:
            return
        try:
            _patiently(conn, "COMMIT", None, False)
        except Exception as error:
            self._handle_exception(error)
        try:  # committed: nothing after this may make the commit look failed
            self._checkpoints.committed(conn)
        except Exception as exc:
            log.warning("could not start a WAL checkpoint", error=str(exc))

    def rollback(self) -> None:
        conn: sqlite3.Connection | None = self._connection._connection
        if conn is None or not conn.in_transaction:
            return
        try:
            conn.rollback()
        except Exception as error:
            self._handle_exception(error)


class _Checkpoints:
    """Passive checkpoints of one engine's database, in a worker thread, one at a time."""

    def __init__(self) -> None:
        self.commits = 0
        self.running: asyncio.Future[None] | None = None

    def committed(self, conn: sqlite3.Connection) -> None:
        self.commits += 1
        if self.commits < CHECKPOINT_EVERY or (self.running and not self.running.done()):
            return
        self.commits = 0
        path = _file_of(conn)
        if path is None:  # an in-memory database has no WAL
            return
        self.running = asyncio.get_running_loop().run_in_executor(None, _checkpoint, path)
        self.running.add_done_callback(_log_failure)


def _file_of(conn: sqlite3.Connection) -> str | None:
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file) or None
    return None


def _checkpoint(path: str) -> None:
    """Copy what it can of the WAL into the database, waiting for no one (``PASSIVE``)."""
    # mode=rw: a database removed meanwhile is not created anew, empty.
    conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        # The next one will try again; until then the WAL only grows (nothing is lost).
        log.warning("WAL checkpoint failed", error=str(done.exception()))


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.checkpoints = _Checkpoints()

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection, self.checkpoints)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for ``create_async_engine(..., module=dbapi())`` on SQLite: one per
    engine (its checkpoints are counted per engine)."""
    return _Dbapi()
