"""Audit-log storage: leaves appended inside the transaction of the action they record.

Leaf indexes come from the single ``audit_head`` row (``UPDATE ... RETURNING``), so they are
gap-free and in commit order on both backends. An entry is canonical JSON of metadata only:
ids, hashes, codes — never content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.merkle import leaf_hash

from .tables import audit_head, audit_leaves

__all__ = ["append", "encode_entry", "leaf_hashes", "read_entries", "size"]


def encode_entry(entry: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of one audit entry."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def append(conn: AsyncConnection, entries: Sequence[dict[str, Any]], now: int) -> int:
    """Append ``entries`` and return the index of the first one."""
    if not entries:
        return -1
    new_size = (
        await conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=audit_head.c.size + len(entries))
            .returning(audit_head.c.size)
        )
    ).scalar_one()
    first = new_size - len(entries)
    rows = []
    for offset, entry in enumerate(entries):
        data = encode_entry({**entry, "time": now})
        rows.append(
            {"idx": first + offset, "entry": data, "leaf_hash": leaf_hash(data), "created_at": now}
        )
    await conn.execute(audit_leaves.insert(), rows)
    return first


async def size(conn: AsyncConnection) -> int:
    return (await conn.execute(select(audit_head.c.size).where(audit_head.c.id == 1))).scalar_one()


async def leaf_hashes(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    result = await conn.execute(
        select(audit_leaves.c.leaf_hash)
        .where(audit_leaves.c.idx >= start, audit_leaves.c.idx < end)
        .order_by(audit_leaves.c.idx)
    )
    return [row[0] for row in result]


async def read_entries(conn: AsyncConnection, start: int, end: int) -> list[tuple[int, bytes]]:
    result = await conn.execute(
        select(audit_leaves.c.idx, audit_leaves.c.entry)
        .where(audit_leaves.c.idx >= start, audit_leaves.c.idx < end)
        .order_by(audit_leaves.c.idx)
    )
    return [(row[0], row[1]) for row in result]
