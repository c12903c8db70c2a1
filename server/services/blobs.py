"""Attachment blobs (design §6): resumable chunked upload and ranged, streamed download.

A blob belongs to one area of one operation and holds ciphertext only: the client encrypts the
file (:mod:`opseal.crypto.attachments`) and signs its SHA-256 into the message that refers to
it. The server cannot see which message that is, so it serves a blob to the devices that may
read its area now: members of the area's roster whose organisation's role reads the area under
the current charter.

Upload: :func:`create_blob` declares the size and SHA-256; the creating device then sends
chunks in order, each at ``offset == received``. A chunk row (keyed by its offset) is written
in the transaction that advances ``received``, so an interrupted request leaves all of it or
none. Every chunk but the last holds at least :data:`MIN_CHUNK_BYTES`, which bounds the number
of rows (and of queries) per blob. A chunk sent again at an offset already stored, with the
same bytes, is an idempotent retry and answers the current state; other bytes, or an offset
past ``received``, are a conflict whose details give ``received`` so the client can resume.

The chunk that completes a blob is hashed, with the stored chunks before it, ahead of its
write transaction and one chunk per short connection, so hashing a large blob holds no lock
(on SQLite every connection takes the one write lock). On a mismatch the blob is
**reset** to zero bytes (its chunks are deleted, ``blob-reset`` is audited) and the request is
refused: the server cannot tell which chunk was wrong, and a blob left at its full size could
never complete. The client uploads again from offset 0 under the same blob id.

Download reads one chunk per query, each in its own short connection, so memory stays at one
chunk and a slow client never holds a transaction open.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.encoding import b64e

from ..config import Settings
from ..errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from ..storage import blobs as store
from .areas import AreaRef, _is_member, _reader
from .base import Context, Principal, Tx
from .operations import membership

__all__ = [
    "MIN_CHUNK_BYTES",
    "Download",
    "blob_info",
    "bytes_held",
    "create_blob",
    "open_download",
    "put_chunk",
    "read_range",
]

MIN_CHUNK_BYTES = 64 * 1024
_THREAD_HASH_BYTES = 1 << 20  # hash larger chunks off the event loop


@dataclass(frozen=True)
class Download:
    """What a permitted download serves: bytes ``start`` to ``end - 1`` of a complete blob."""

    blob_id: str
    size: int
    sha256: bytes
    start: int
    end: int
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start


# -- access ----------------------------------------------------------------------------
def _blob_json(row: Any) -> dict[str, Any]:
    return {
        "blob_id": row.blob_id,
        "operation_id": row.operation_id,
        "area": row.area,
        "size": row.size,
        "sha256": b64e(row.sha256),
        "received": row.received,
        "complete": row.complete,
    }


def _ref(row: Any) -> AreaRef:
    return AreaRef(row.operation_id, row.area)


async def _blob(conn: AsyncConnection, blob_id: str, *, lock: bool = False) -> Any:
    try:
        key = str(uuid.UUID(blob_id))
    except ValueError as exc:
        raise NotFound(f"blob {blob_id!r} does not exist") from exc
    row = await store.get(conn, key, lock=lock)
    if row is None:
        raise NotFound(f"blob {blob_id!r} does not exist")
    return row


async def _poster(ctx: Context, conn: AsyncConnection, principal: Principal, ref: AreaRef) -> None:
    """A device that may post in the area now: writable phase, post right, roster member."""
    member = await membership(ctx, conn, principal, ref.operation_id)
    member.check_writable()
    member.check_area(ref.area, post=True)
    if not await _is_member(conn, ref, principal.device_id):
        raise Forbidden(f"device {principal.device_id!r} is not a member of area {ref.area!r}")


# -- upload ----------------------------------------------------------------------------
def _check_declared(settings: Settings, size: int, sha256: bytes) -> None:
    if size < 1:
        raise BadRequest("field 'size': expected a positive number of bytes", field="size")
    if size > settings.max_blob_bytes:
        raise PayloadTooLarge(
            f"blob of {size} bytes exceeds this server's limit of "
            f"{settings.max_blob_bytes} bytes per attachment",
            limit=settings.max_blob_bytes,
        )
    if len(sha256) != 32:
        raise BadRequest(
            "field 'sha256': expected the 32-byte SHA-256 of the ciphertext", field="sha256"
        )


async def _check_quotas(
    settings: Settings, conn: AsyncConnection, principal: Principal, ref: AreaRef, size: int
) -> None:
    """The declared size must fit the organisation's and the operation's remaining quota."""
    org_used = await store.bytes_of_organisation(conn, principal.org_id)
    _check_quota("organisation", principal.org_id, settings.max_org_blob_bytes, org_used, size)
    op_used = await store.bytes_of_operation(conn, ref.operation_id)
    _check_quota("operation", ref.operation_id, settings.max_operation_blob_bytes, op_used, size)


async def bytes_held(ctx: Context, operation_id: str, org_id: str) -> tuple[int, int]:
    """Declared blob bytes held by the operation and by the organisation (the quotas' use)."""
    async with ctx.engine.connect() as conn:
        return (
            await store.bytes_of_operation(conn, operation_id),
            await store.bytes_of_organisation(conn, org_id),
        )


def _check_quota(scope: str, name: str, quota: int, used: int, size: int) -> None:
    if used + size > quota:
        raise PayloadTooLarge(
            f"blob of {size} bytes exceeds the {scope} quota of {quota} bytes for {name!r} "
            f"({used} bytes already held)",
            quota=quota,
            used=used,
            scope=scope,
        )


async def create_blob(
    ctx: Context, principal: Principal, ref: AreaRef, size: int, sha256: bytes
) -> dict[str, Any]:
    """Declare a blob of ``size`` bytes whose ciphertext hashes to ``sha256``."""
    _check_declared(ctx.settings, size, sha256)
    blob_id = str(uuid.uuid4())
    async with ctx.transaction() as tx:
        await _poster(ctx, tx.conn, principal, ref)
        await _check_quotas(ctx.settings, tx.conn, principal, ref, size)
        await store.insert_blob(
            tx.conn,
            blob_id,
            operation_id=ref.operation_id,
            area=ref.area,
            device_id=principal.device_id,
            size=size,
            sha256=sha256,
            now=tx.now,
        )
        await tx.audit(
            event="blob-created",
            blob=blob_id,
            operation=ref.operation_id,
            area=ref.area,
            device=principal.device_id,
            size=size,
            sha256=b64e(sha256),
        )
    return {"blob_id": blob_id, "received": 0}


def _check_length(settings: Settings, data: bytes) -> None:
    limit = settings.max_blob_chunk_bytes
    if len(data) > limit:
        raise PayloadTooLarge(f"chunk of {len(data)} bytes exceeds the limit of {limit} bytes")
    if not data:
        raise BadRequest("body: expected at least one byte of the blob")


def _check_chunk(settings: Settings, blob: Any, offset: int, data: bytes) -> None:
    end = offset + len(data)
    if end > blob.size:
        raise BadRequest(
            f"chunk ends at byte {end}, past the blob's declared size of {blob.size}",
            received=blob.received,
        )
    least = min(MIN_CHUNK_BYTES, settings.max_blob_chunk_bytes)
    if end < blob.size and len(data) < least:
        raise BadRequest(f"every chunk but the last must hold at least {least} bytes")


async def put_chunk(
    ctx: Context, principal: Principal, blob_id: str, offset: int, data: bytes
) -> dict[str, Any]:
    """Store the chunk at ``offset``; see the module docstring for retries and the final hash."""
    _check_length(ctx.settings, data)
    digest, key = await _prepare(ctx, principal, blob_id, offset, data)
    stored = False
    try:
        async with ctx.transaction() as tx:
            blob = await _uploading(ctx, tx.conn, principal, blob_id)
            if offset != blob.received or blob.complete:
                await _check_retry(ctx, tx.conn, blob, offset, data)
                return _progress(blob.blob_id, blob.received, blob.complete)
            _check_chunk(ctx.settings, blob, offset, data)
            if digest is None and offset + len(data) == blob.size:  # it moved under the pre-hash
                digest = await _hash(_pieces(ctx, tx.conn, blob.blob_id, 0, offset), data)
            if ctx.chunks.external and key is None:  # it moved under the pre-check
                key = await ctx.chunks.put(blob.blob_id, offset, data)
            received, dropped = await _store_chunk(tx, blob, offset, data, digest, key)
        stored = True
    finally:
        if key is not None and not stored:  # refused or failed: no row names the object
            await ctx.chunks.delete([key])
    await ctx.chunks.delete(dropped)
    if received == 0:
        raise BadRequest(
            "the uploaded bytes do not match the declared sha256; the blob was reset: "
            "upload it again from offset 0",
            received=0,
        )
    return _progress(blob.blob_id, received, received == blob.size)


async def _prepare(
    ctx: Context, principal: Principal, blob_id: str, offset: int, data: bytes
) -> tuple[bytes | None, str | None]:
    """Work done before the write transaction, so it holds no lock (on SQLite: the database's
    one write lock): the SHA-256 the blob will have if this chunk completes it (else None),
    and, with an external store, the chunk written there under a fresh key (else None).

    Only for the blob's creator at the offset it expects; stored chunks never change — only a
    reset deletes them — and the transaction re-checks everything.
    """
    async with ctx.engine.connect() as conn:
        blob = await _blob(conn, blob_id)
    if blob.device_id != principal.device_id or blob.complete or offset != blob.received:
        return None, None
    if offset + len(data) > blob.size:
        return None, None
    digest = None
    if offset + len(data) == blob.size:
        try:
            digest = await _hash(_read(ctx, blob.blob_id, 0, offset), data)
        except _MissingChunk:  # reset meanwhile: the locked re-check refuses this chunk
            return None, None
    key = await ctx.chunks.put(blob.blob_id, offset, data) if ctx.chunks.external else None
    return digest, key


def _progress(blob_id: str, received: int, complete: bool) -> dict[str, Any]:
    return {"blob_id": blob_id, "received": received, "complete": complete}


async def _uploading(
    ctx: Context, conn: AsyncConnection, principal: Principal, blob_id: str
) -> Any:
    """The blob, locked, if ``principal`` created it and may still post in its area."""
    blob = await _blob(conn, blob_id, lock=True)
    if blob.device_id != principal.device_id:
        raise Forbidden("only the device that created a blob uploads its chunks")
    await _poster(ctx, conn, principal, _ref(blob))
    return blob


async def _check_retry(
    ctx: Context, conn: AsyncConnection, blob: Any, offset: int, data: bytes
) -> None:
    """A chunk resent over stored bytes must repeat them exactly; anything else conflicts."""
    end = offset + len(data)
    if end <= blob.received and await _stored(ctx, conn, blob.blob_id, offset, end) == data:
        return
    raise Conflict(
        f"a chunk of {len(data)} bytes at offset {offset} does not continue the upload: "
        f"{blob.received} of {blob.size} bytes received, resume at offset {blob.received}",
        received=blob.received,
    )


async def _store_chunk(
    tx: Tx, blob: Any, offset: int, data: bytes, digest: bytes | None, key: str | None
) -> tuple[int, list[str]]:
    """Record the chunk and return the new ``received`` — 0 when the finished blob failed its
    hash and was reset — and the external objects to delete once committed."""
    received = offset + len(data)
    if key is None:
        await store.insert_chunk(tx.conn, blob.blob_id, offset, len(data), data=data)
    else:
        await store.insert_chunk(tx.conn, blob.blob_id, offset, len(data), object_key=key)
    if received < blob.size:
        await _set_progress(tx, blob, received, complete=False)
    elif digest == blob.sha256:
        await _set_progress(tx, blob, received, complete=True)
    else:
        return 0, await _reset(tx, blob)
    return received, []


async def _set_progress(tx: Tx, blob: Any, received: int, *, complete: bool) -> None:
    await store.set_progress(tx.conn, blob.blob_id, received, complete)
    if complete:
        await tx.audit(
            event="blob-uploaded",
            blob=blob.blob_id,
            operation=blob.operation_id,
            area=blob.area,
            device=blob.device_id,
            size=blob.size,
            sha256=b64e(blob.sha256),
        )


async def _reset(tx: Tx, blob: Any) -> list[str]:
    """Forget the blob's chunks; returns their external objects, deleted after the commit."""
    keys = await store.object_keys_of_blob(tx.conn, blob.blob_id)
    await store.delete_chunks(tx.conn, blob.blob_id)
    await store.set_progress(tx.conn, blob.blob_id, 0, False)
    await tx.audit(
        event="blob-reset",
        blob=blob.blob_id,
        operation=blob.operation_id,
        area=blob.area,
        device=blob.device_id,
        reason="sha256-mismatch",
    )
    return keys


# -- reading chunks --------------------------------------------------------------------
class _MissingChunk(RuntimeError):
    """No stored chunk holds a byte below ``received``: the blob was reset meanwhile."""


async def _chunk_at(
    conn: AsyncConnection, blob_id: str, position: int
) -> tuple[int, bytes | None, str | None]:
    """``(offset, data, object key)`` of the stored chunk holding byte ``position`` (chunks
    are contiguous from offset 0): its bytes, or the key of its bytes in the external store."""
    row = await store.chunk_at(conn, blob_id, position)
    length = None if row is None else row.length if row.length is not None else len(row.data)
    if row is None or length is None or position >= row.offset + length:
        raise _MissingChunk(f"blob {blob_id}: no stored chunk holds byte {position}")
    return row.offset, row.data, row.object_key


async def _bytes(ctx: Context, data: bytes | None, key: str | None) -> bytes:
    if data is not None:
        return data
    assert key is not None  # a row holds its bytes or their key (the insert sets one)
    return await ctx.chunks.get(key)


async def _piece(
    ctx: Context, conn: AsyncConnection, blob_id: str, position: int, end: int
) -> bytes:
    """Bytes from ``position`` up to ``end`` or the end of the chunk holding ``position``."""
    offset, data, key = await _chunk_at(conn, blob_id, position)
    return (await _bytes(ctx, data, key))[position - offset : end - offset]


async def _pieces(
    ctx: Context, conn: AsyncConnection, blob_id: str, start: int, end: int
) -> AsyncIterator[bytes]:
    """Bytes ``start`` to ``end - 1`` through one connection (inside a transaction)."""
    position = start
    while position < end:
        piece = await _piece(ctx, conn, blob_id, position, end)
        position += len(piece)
        yield piece


async def _read(ctx: Context, blob_id: str, start: int, end: int) -> AsyncIterator[bytes]:
    """Bytes ``start`` to ``end - 1``, one chunk per short-lived connection; an external
    object is fetched after its row's connection is closed."""
    position = start
    while position < end:
        async with ctx.engine.connect() as conn:
            offset, data, key = await _chunk_at(conn, blob_id, position)
        piece = (await _bytes(ctx, data, key))[position - offset : end - offset]
        position += len(piece)
        yield piece


async def _stored(ctx: Context, conn: AsyncConnection, blob_id: str, start: int, end: int) -> bytes:
    return b"".join([piece async for piece in _pieces(ctx, conn, blob_id, start, end)])


async def _hash(pieces: AsyncIterator[bytes], last: bytes) -> bytes:
    """SHA-256 of ``pieces`` then ``last``; large pieces are hashed off the event loop."""
    digest = hashlib.sha256()
    async for piece in pieces:
        await _update(digest, piece)
    await _update(digest, last)
    return digest.digest()


async def _update(digest: Any, data: bytes) -> None:
    if len(data) >= _THREAD_HASH_BYTES:
        await asyncio.to_thread(digest.update, data)
    else:
        digest.update(data)


# -- download --------------------------------------------------------------------------
async def blob_info(ctx: Context, principal: Principal, blob_id: str) -> dict[str, Any]:
    """A blob's metadata, for devices that may read its area."""
    async with ctx.engine.connect() as conn:
        blob = await _blob(conn, blob_id)
        await _reader(ctx, conn, principal, _ref(blob))
    return _blob_json(blob)


def _resolve(size: int, byte_range: tuple[int | None, int | None] | None) -> tuple[int, int]:
    """``[start, end)`` for an HTTP range ``(first, last)``; ``(None, n)`` is the last n bytes."""
    if byte_range is None:
        return 0, size
    first, last = byte_range
    if first is None:
        if not last:
            raise RangeNotSatisfiable("Range: a suffix range needs at least one byte", size=size)
        return max(0, size - last), size
    if first >= size:
        raise RangeNotSatisfiable(
            f"Range: starts at byte {first}, past the blob's {size} bytes", size=size
        )
    return first, size if last is None else min(last + 1, size)


async def open_download(
    ctx: Context,
    principal: Principal,
    blob_id: str,
    byte_range: tuple[int | None, int | None] | None,
) -> Download:
    """Check access and the range, and audit the download, before any byte is sent."""
    async with ctx.transaction() as tx:
        blob = await _blob(tx.conn, blob_id)
        await _reader(ctx, tx.conn, principal, _ref(blob))
        if not blob.complete:
            raise Conflict(
                f"blob is incomplete: {blob.received} of {blob.size} bytes received",
                received=blob.received,
            )
        start, end = _resolve(blob.size, byte_range)
        await tx.audit(
            event="blob-downloaded",
            blob=blob.blob_id,
            operation=blob.operation_id,
            area=blob.area,
            device=principal.device_id,
            start=start,
            end=end,
        )
    return Download(blob.blob_id, blob.size, blob.sha256, start, end, byte_range is not None)


def read_range(ctx: Context, download: Download) -> AsyncIterator[bytes]:
    """The bytes of ``download``, a stored chunk (or part of one) per short-lived connection."""
    return _read(ctx, download.blob_id, download.start, download.end)
