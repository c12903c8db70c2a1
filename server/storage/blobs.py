"""Blob queries: a blob's row (declared size and hash, upload progress) and its chunks, each
keyed by the byte offset it starts at.

Statements are built once at import; the upload and download rules live in
:mod:`opseal.server.services.blobs`.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from .db import Record
from .tables import blob_chunks, blobs, devices

__all__ = [
    "bytes_of_operation",
    "bytes_of_organisation",
    "chunk_at",
    "chunks_after",
    "delete_chunks",
    "get",
    "insert_blob",
    "insert_chunk",
    "object_keys_of_blob",
    "object_keys_of_operation",
    "set_chunk_bytes",
    "set_progress",
]

_BLOB: BindParameter[str] = bindparam("blob_id")
_GET = select(blobs).where(blobs.c.blob_id == _BLOB)
_GET_LOCKED = _GET.with_for_update()
_INSERT = insert(blobs)
_SET_PROGRESS = (
    update(blobs)
    .where(blobs.c.blob_id == bindparam("b_blob_id"))
    .values(received=bindparam("b_received"), complete=bindparam("b_complete"))
)
_OPERATION_BYTES = select(func.coalesce(func.sum(blobs.c.size), 0)).where(
    blobs.c.operation_id == bindparam("operation_id")
)
_ORGANISATION_BYTES = (
    select(func.coalesce(func.sum(blobs.c.size), 0))
    .select_from(blobs.join(devices, devices.c.device_id == blobs.c.device_id))
    .where(devices.c.org_id == bindparam("org_id"))
)
_INSERT_CHUNK = insert(blob_chunks)
_DELETE_CHUNKS = delete(blob_chunks).where(blob_chunks.c.blob_id == _BLOB)
_OBJECT_KEYS = select(blob_chunks.c.object_key).where(
    blob_chunks.c.blob_id == _BLOB, blob_chunks.c.object_key.is_not(None)
)
_OPERATION_OBJECT_KEYS = (
    select(blob_chunks.c.object_key)
    .select_from(blob_chunks.join(blobs, blobs.c.blob_id == blob_chunks.c.blob_id))
    .where(blobs.c.operation_id == bindparam("operation_id"), blob_chunks.c.object_key.is_not(None))
)
_CHUNK_COLUMNS = (
    blob_chunks.c.blob_id,
    blob_chunks.c.offset,
    blob_chunks.c.data,
    blob_chunks.c.length,
    blob_chunks.c.object_key,
)
_CHUNKS_AFTER = (
    select(*_CHUNK_COLUMNS)
    .where(
        or_(
            blob_chunks.c.blob_id > bindparam("after_blob"),
            and_(
                blob_chunks.c.blob_id == bindparam("after_blob"),
                blob_chunks.c.offset > bindparam("after_offset"),
            ),
        )
    )
    .order_by(blob_chunks.c.blob_id, blob_chunks.c.offset)
    .limit(bindparam("limit"))
)
_SET_CHUNK_BYTES = (
    update(blob_chunks)
    .where(
        blob_chunks.c.blob_id == bindparam("b_blob_id"),
        blob_chunks.c.offset == bindparam("b_offset"),
    )
    .values(
        data=bindparam("b_data"),
        length=bindparam("b_length"),
        object_key=bindparam("b_object_key"),
    )
)
_CHUNK_AT = (
    select(blob_chunks.c.offset, blob_chunks.c.data, blob_chunks.c.length, blob_chunks.c.object_key)
    .where(blob_chunks.c.blob_id == _BLOB, blob_chunks.c.offset <= bindparam("position"))
    .order_by(blob_chunks.c.offset.desc())
    .limit(1)
)


async def get(conn: AsyncConnection, blob_id: str, *, lock: bool = False) -> Record | None:
    """The blob's row, or None; ``lock`` holds it (``FOR UPDATE``) for the transaction."""
    return (await conn.execute(_GET_LOCKED if lock else _GET, {"blob_id": blob_id})).first()


async def insert_blob(
    conn: AsyncConnection,
    blob_id: str,
    *,
    operation_id: str,
    area: str,
    device_id: str,
    size: int,
    sha256: bytes,
    now: int,
) -> None:
    """Declare an empty, incomplete blob; a used id raises ``IntegrityError``."""
    await conn.execute(
        _INSERT,
        {
            "blob_id": blob_id,
            "operation_id": operation_id,
            "area": area,
            "device_id": device_id,
            "size": size,
            "sha256": sha256,
            "received": 0,
            "complete": False,
            "created_at": now,
        },
    )


async def set_progress(conn: AsyncConnection, blob_id: str, received: int, complete: bool) -> None:
    await conn.execute(
        _SET_PROGRESS, {"b_blob_id": blob_id, "b_received": received, "b_complete": complete}
    )


async def insert_chunk(
    conn: AsyncConnection, blob_id: str, offset: int, length: int, *, data: bytes | None = None,
    object_key: str | None = None,
) -> None:  # fmt: skip
    """Record a chunk with its bytes (``data``) or the key of its bytes in an external store;
    one already recorded at ``offset`` raises ``IntegrityError``."""
    await conn.execute(
        _INSERT_CHUNK,
        {"blob_id": blob_id, "offset": offset, "data": data, "length": length,
         "object_key": object_key},
    )  # fmt: skip


async def object_keys_of_blob(conn: AsyncConnection, blob_id: str) -> list[str]:
    """The external-store keys of the blob's chunks (none with the database store)."""
    return list((await conn.execute(_OBJECT_KEYS, {"blob_id": blob_id})).scalars())


async def object_keys_of_operation(conn: AsyncConnection, operation_id: str) -> list[str]:
    """The external-store keys of every chunk of the operation's blobs."""
    result = await conn.execute(_OPERATION_OBJECT_KEYS, {"operation_id": operation_id})
    return list(result.scalars())


async def delete_chunks(conn: AsyncConnection, blob_id: str) -> None:
    await conn.execute(_DELETE_CHUNKS, {"blob_id": blob_id})


async def chunk_at(conn: AsyncConnection, blob_id: str, position: int) -> Record | None:
    """``(offset, data, length, object_key)`` of the stored chunk with the greatest offset at
    or below ``position`` (the one holding it when chunks are contiguous), or None."""
    return (await conn.execute(_CHUNK_AT, {"blob_id": blob_id, "position": position})).first()


async def bytes_of_operation(conn: AsyncConnection, operation_id: str) -> int:
    """The declared sizes of the operation's blobs, summed."""
    return int((await conn.execute(_OPERATION_BYTES, {"operation_id": operation_id})).scalar_one())


async def bytes_of_organisation(conn: AsyncConnection, org_id: str) -> int:
    """The declared sizes of the blobs uploaded by the organisation's devices, summed."""
    return int((await conn.execute(_ORGANISATION_BYTES, {"org_id": org_id})).scalar_one())


async def chunks_after(
    conn: AsyncConnection, blob_id: str, offset: int, limit: int
) -> list[Record]:
    """Up to ``limit`` chunk rows after ``(blob_id, offset)`` in that order, every column but
    the bytes' owner: ``(blob_id, offset, data, length, object_key)``."""
    result = await conn.execute(
        _CHUNKS_AFTER, {"after_blob": blob_id, "after_offset": offset, "limit": limit}
    )
    return list(result)


async def set_chunk_bytes(
    conn: AsyncConnection, blob_id: str, offset: int, length: int, *,
    data: bytes | None = None, object_key: str | None = None,
) -> None:  # fmt: skip
    """Point a chunk row at its bytes' new home: the row itself, or an object key."""
    await conn.execute(
        _SET_CHUNK_BYTES,
        {"b_blob_id": blob_id, "b_offset": offset, "b_data": data, "b_length": length,
         "b_object_key": object_key},
    )  # fmt: skip
