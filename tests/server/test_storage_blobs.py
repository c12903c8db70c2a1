"""Blob and receipt storage on every backend, without the HTTP layer or the services' rules."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from opseal.server.storage import blobs, receipts

from .storage_seed import NOW, OP, opened, operation, org, tx

BLOB = "6f1c2d3e-0000-4000-8000-000000000001"


@pytest.fixture
async def engine(database_url):
    """The operation with area 'seizures' and one declared, empty blob of 10 bytes."""
    async with opened(database_url) as engine:
        async with tx(engine) as conn:
            await org(conn, "wco")
            await operation(conn)
            await blobs.insert_blob(
                conn,
                BLOB,
                operation_id=OP,
                area="seizures",
                device_id="dev-a",
                size=10,
                sha256=b"S" * 32,
                now=NOW,
            )
        yield engine


async def test_a_blob_round_trips_and_records_progress(engine):
    """A declared blob reads back empty and incomplete, locked or not, then with its progress."""
    async with tx(engine) as conn:
        row = await blobs.get(conn, BLOB, lock=True)
        assert (row.operation_id, row.area, row.device_id) == (OP, "seizures", "dev-a")
        assert (row.size, row.sha256, row.received, row.complete) == (10, b"S" * 32, 0, False)
        await blobs.set_progress(conn, BLOB, 10, True)
    async with engine.connect() as conn:
        row = await blobs.get(conn, BLOB)
        assert (row.received, row.complete) == (10, True)
        assert await blobs.get(conn, "6f1c2d3e-0000-4000-8000-000000000002") is None


async def test_a_blob_id_is_unique(engine):
    """Declaring a second blob with a used id raises."""
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await blobs.insert_blob(
                conn, BLOB, operation_id=OP, area="seizures", device_id="x", size=1,
                sha256=b"T" * 32, now=NOW,
            )  # fmt: skip


async def test_the_chunk_holding_a_byte_is_found(engine):
    """The chunk with the greatest offset at or below a position is returned; before any
    chunk there is none."""
    async with tx(engine) as conn:
        await blobs.insert_chunk(conn, BLOB, 4, 4, data=b"4567")
        await blobs.insert_chunk(conn, BLOB, 0, 4, data=b"0123")
        await blobs.insert_chunk(conn, BLOB, 8, 2, data=b"89")
    async with engine.connect() as conn:
        assert tuple(await blobs.chunk_at(conn, BLOB, 0)) == (0, b"0123", 4, None)
        assert tuple(await blobs.chunk_at(conn, BLOB, 3)) == (0, b"0123", 4, None)
        assert tuple(await blobs.chunk_at(conn, BLOB, 4)) == (4, b"4567", 4, None)
        assert tuple(await blobs.chunk_at(conn, BLOB, 9)) == (8, b"89", 2, None)
        assert await blobs.chunk_at(conn, "6f1c2d3e-0000-4000-8000-000000000002", 0) is None


async def test_a_chunk_offset_is_stored_once_and_a_reset_deletes_all(engine):
    """A second chunk at a stored offset raises; deleting the chunks leaves none."""
    async with tx(engine) as conn:
        await blobs.insert_chunk(conn, BLOB, 0, 4, data=b"0123")
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await blobs.insert_chunk(conn, BLOB, 0, 4, data=b"abcd")
    async with tx(engine) as conn:
        assert tuple(await blobs.chunk_at(conn, BLOB, 0)) == (0, b"0123", 4, None)
        await blobs.delete_chunks(conn, BLOB)
    async with engine.connect() as conn:
        assert await blobs.chunk_at(conn, BLOB, 0) is None


async def test_receipts_are_unique_per_message_device_and_kind(engine):
    """A receipt reads back by (message, device, kind) and with the message's others; a
    repeat of the triple raises."""
    async with tx(engine) as conn:
        await receipts.insert_receipt(
            conn, "m-1", "dev-a", "read", org_id="wco", statement=b"r", now=NOW
        )
        await receipts.insert_receipt(
            conn, "m-1", "dev-a", "ack", org_id="wco", statement=b"a", now=NOW + 1
        )
        await receipts.insert_receipt(
            conn, "m-2", "dev-a", "read", org_id="wco", statement=b"x", now=NOW
        )
    async with engine.connect() as conn:
        row = await receipts.get(conn, "m-1", "dev-a", "ack")
        assert (row.org_id, row.statement, row.created_at) == ("wco", b"a", NOW + 1)
        assert await receipts.get(conn, "m-1", "dev-b", "ack") is None
        kinds = sorted(r.kind for r in await receipts.for_message(conn, "m-1"))
        assert kinds == ["ack", "read"]
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await receipts.insert_receipt(
                conn, "m-1", "dev-a", "read", org_id="wco", statement=b"r2", now=NOW
            )
