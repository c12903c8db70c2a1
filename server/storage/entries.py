"""Queries over an area's entries (the ``events`` table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import events

__all__ = ["entries_after"]


async def entries_after(
    conn: AsyncConnection, operation_id: str, area: str, after: int, limit: int
) -> list[Any]:
    """Up to ``limit`` entries of an area with sequence numbers above ``after``, in order."""
    result = await conn.execute(
        select(events)
        .where(events.c.operation_id == operation_id, events.c.area == area, events.c.seq > after)
        .order_by(events.c.seq)
        .limit(limit)
    )
    return list(result)
