"""Suite-wide fixtures: blocking-call detection in the async tests of the client and server.

`blockbuster <https://pypi.org/project/blockbuster/>`_ (as aiohttp's own suite uses it) wraps
the standard library's blocking functions (file and socket I/O, ``time.sleep``, SQLite, locks)
and raises ``BlockingError`` when one runs on the event loop's thread with an ``opseal`` frame
on the stack. Work moved to a thread (``asyncio.to_thread``, aiosqlite) is not on the loop and
passes. The allowances below are narrow and each says why.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from opseal.client.store import Store

CHECKED = ("client", "server")
"""Test folders whose async tests run under blockbuster."""
SCANNED = ["opseal.client", "opseal.server", "opseal.crypto", "opseal.wire"]


def _allow(bb: BlockBuster) -> None:
    # The client's local store is synchronous SQLite on purpose (design §14: small local
    # transactions, synchronous=FULL so a queued submission survives a crash); its callers
    # are the store's methods and two direct queries of the outbox and attachments parts.
    store = {name for name, _ in inspect.getmembers(Store, inspect.isfunction)}
    for name, function in bb.functions.items():
        if name.startswith("sqlite3."):
            function.can_block_in("client/store.py", store)
            function.can_block_in("client/outbox.py", "_known_ids")
            function.can_block_in("client/attachments.py", "_forget")
            # The server's SQLite statements run on the loop by design (design §13 "SQLite
            # statements on the loop"): microseconds from SQLite's page cache, no fsync at
            # commit, and never a wait for a lock (awaited instead); checkpoints run in a thread.
            function.can_block_in(
                "server/storage/sqlite_driver.py", {"_run", "commit", "rollback", "_file_of"}
            )
    # Start-up, before anything is served: the SQLite engine creates its folder once; and each
    # new pooled PostgreSQL connection, where asyncpg looks for ~/.pgpass and client
    # certificates while parsing its DSN (a few stat calls, in asyncpg).
    for function in bb.functions.values():
        function.can_block_in("server/storage/db.py", "_sqlite_engine")
        function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        # The first S3 client of a process: botocore reads its bundled service model files
        # (the blob store reads the configuration and the S3 model off the loop first; the
        # rule-set extras are looked up again when the client is made).
        function.can_block_in("botocore/loaders.py", "load_data_with_path")
        # Only the loop the test, its servers and its clients share is checked: a worker
        # thread's own loop (the CLI's asyncio.run in a thread, alembic's migrations) blocks
        # nothing else.
        function.can_block_predicate = _or_in_worker_thread(function.can_block_predicate)


def _or_in_worker_thread(allowed: Callable[..., bool]) -> Callable[..., bool]:
    """``allowed`` (blockbuster's own rule, e.g. a lock taken without waiting), or off the
    main thread."""

    def predicate(*args: object, **kwargs: object) -> bool:
        return threading.current_thread() is not threading.main_thread() or allowed(*args, **kwargs)

    return predicate


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Fail an async test of the client or server suite on a blocking call in the event loop."""
    folder = Path(request.node.path).parent.name
    if folder not in CHECKED or not inspect.iscoroutinefunction(request.function):
        yield None
        return
    bb = BlockBuster(SCANNED)
    _allow(bb)  # before activating: the wrappers take the predicate when they are made
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()
