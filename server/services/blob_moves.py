"""Moving attachment bytes between blob stores (``opseal-server blobs migrate``, design §13)."""

from __future__ import annotations

from typing import Any

from ..blobstore import ChunkStore, MissingObject
from ..storage import blobs as store
from .base import Context

__all__ = ["move_chunks"]


async def move_chunks(ctx: Context, target: ChunkStore, *, page: int = 200) -> dict[str, int]:
    """Move every chunk's bytes from the configured store (``ctx.chunks``) to ``target``.

    For ``opseal-server blobs migrate`` with the nodes stopped: a row is re-pointed in its own
    transaction once its bytes are durable in ``target``, and the old copy is deleted after
    that commit, so an interrupted run loses nothing and a re-run finishes it (a row already
    moved is recognised: its bytes are in the row, or its key is found in ``target``).
    """
    moved = skipped = size = 0
    after: tuple[str, int] = ("", -1)
    while True:
        async with ctx.engine.connect() as conn:
            rows = await store.chunks_after(conn, *after, page)
        if not rows:
            return {"moved": moved, "already_there": skipped, "bytes": size}
        for row in rows:
            after = (row.blob_id, row.offset)
            data = await _source_bytes(ctx, target, row)
            if data is None:
                skipped += 1
                continue
            key = await target.put(row.blob_id, row.offset, data) if target.external else None
            async with ctx.transaction() as tx:
                await store.set_chunk_bytes(tx.conn, row.blob_id, row.offset, len(data),
                                            data=None if key else data, object_key=key)  # fmt: skip
            if row.object_key is not None:
                await ctx.chunks.delete([row.object_key])
            moved, size = moved + 1, size + len(data)


async def _source_bytes(ctx: Context, target: ChunkStore, row: Any) -> bytes | None:
    """The row's bytes from where they are now, or None when they are already in ``target``."""
    if row.data is not None:
        return None if not target.external else bytes(row.data)
    if not target.external:
        return await ctx.chunks.get(row.object_key)
    try:
        return await ctx.chunks.get(row.object_key)
    except MissingObject:
        await target.get(row.object_key)  # moved by an earlier run (else: lost — raise)
        return None
