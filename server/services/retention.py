"""Retention: archived operations are purged once their retention period has passed.

An operation's retention runs from its end date (``ends_at``) for ``retention_days``. The
purge deletes everything its areas hold — messages, commits, sealed secrets, key packages,
receipts, blobs — and keeps the operation row and its charter versions, so the audit trail
still names what existed. The purge itself is an audit entry with the counts removed.
"""

from __future__ import annotations

from typing import Any

from ..storage import blobs, operations
from ..storage.retention import purge_content
from .base import Context

__all__ = ["due_for_purge", "purge"]

DAY = 86400


async def due_for_purge(ctx: Context) -> list[str]:
    """Archived operations whose retention period has ended."""
    async with ctx.engine.connect() as conn:
        rows = await operations.archived(conn)
        now = ctx.now()
        return [r.operation_id for r in rows if r.ends_at + r.retention_days * DAY <= now]


async def purge(ctx: Context, operation_id: str) -> dict[str, Any]:
    """Delete an archived operation's content; returns (and audits) what was removed."""
    async with ctx.transaction() as tx:
        keys = await blobs.object_keys_of_operation(tx.conn, operation_id)
        counts = await purge_content(tx.conn, operation_id)
        await tx.audit(event="operation-purged", operation=operation_id, **counts)
    await ctx.chunks.delete(keys)  # after the commit: a failed purge keeps every byte
    return counts
