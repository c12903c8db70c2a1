"""The purge of an operation's content: every area row's content, kept rows named below."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from .tables import (
    area_members,
    areas,
    blob_chunks,
    blobs,
    commit_secrets,
    commits,
    events,
    key_packages,
    receipts,
)

__all__ = ["purge_content"]

_OP: BindParameter[str] = bindparam("operation_id")
_BLOB_IDS = select(blobs.c.blob_id).where(blobs.c.operation_id == _OP)
_DELETES = [
    ("blob_chunks", delete(blob_chunks).where(blob_chunks.c.blob_id.in_(_BLOB_IDS))),
    *(
        (table.name, delete(table).where(table.c.operation_id == _OP))
        for table in (receipts, blobs, commit_secrets, commits, key_packages, events, area_members)
    ),
]
_FORGET_STATE = (
    update(areas).where(areas.c.operation_id == bindparam("b_operation_id")).values(state=None)
)


async def purge_content(conn: AsyncConnection, operation_id: str) -> dict[str, int]:
    """Delete the operation's receipts, blobs, commits, key packages, entries and rosters and
    its areas' group states; returns the rows deleted per table. The operation, its charter
    versions and its area rows (with their sequence heads) stay."""
    counts = {}
    for name, statement in _DELETES:
        counts[name] = (await conn.execute(statement, {"operation_id": operation_id})).rowcount
    await conn.execute(_FORGET_STATE, {"b_operation_id": operation_id})
    return counts
