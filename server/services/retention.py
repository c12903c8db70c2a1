"""Retention: archived operations are purged once their retention period has passed.

An operation's retention runs from its end date (``ends_at``) for ``retention_days``. The
purge deletes everything its areas hold — messages, commits, sealed secrets, key packages,
receipts, blobs — and keeps the operation row and its charter versions, so the audit trail
still names what existed. The purge itself is an audit entry with the counts removed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from ..storage.tables import (
    area_members,
    areas,
    blob_chunks,
    blobs,
    commit_secrets,
    commits,
    events,
    key_packages,
    operations,
    receipts,
)
from .base import Context

__all__ = ["due_for_purge", "purge"]

DAY = 86400


async def due_for_purge(ctx: Context) -> list[str]:
    """Archived operations whose retention period has ended."""
    async with ctx.engine.connect() as conn:
        rows = await conn.execute(
            select(
                operations.c.operation_id, operations.c.ends_at, operations.c.retention_days
            ).where(operations.c.phase == "archived")
        )
        now = ctx.now()
        return [r.operation_id for r in rows if r.ends_at + r.retention_days * DAY <= now]


async def purge(ctx: Context, operation_id: str) -> dict[str, Any]:
    """Delete an archived operation's content; returns (and audits) what was removed."""
    async with ctx.transaction() as tx:
        message_ids = select(events.c.message_id).where(
            events.c.operation_id == operation_id, events.c.message_id.is_not(None)
        )
        blob_ids = select(blobs.c.blob_id).where(blobs.c.operation_id == operation_id)
        counts = {
            "receipts": (
                await tx.conn.execute(
                    delete(receipts).where(receipts.c.message_id.in_(message_ids))
                )
            ).rowcount,
            "blob_chunks": (
                await tx.conn.execute(
                    delete(blob_chunks).where(blob_chunks.c.blob_id.in_(blob_ids))
                )
            ).rowcount,
        }
        for name, table in (
            ("blobs", blobs),
            ("commit_secrets", commit_secrets),
            ("commits", commits),
            ("key_packages", key_packages),
            ("events", events),
            ("area_members", area_members),
        ):
            result = await tx.conn.execute(
                delete(table).where(table.c.operation_id == operation_id)
            )
            counts[name] = result.rowcount
        await tx.conn.execute(
            areas.update().where(areas.c.operation_id == operation_id).values(state=None)
        )
        await tx.audit(event="operation-purged", operation=operation_id, **counts)
    return counts
