"""Audit-log storage: leaves appended inside the transaction of the action they record, and
the signed checkpoints.

Services append with ``salt=True``, so each leaf carries a random ``salt`` (16 bytes): a
reader is served the leaf hashes of entries it may not see (its proofs run over the whole
tree), and the salt keeps those hashes from being tested against a guessed entry.

Leaf indexes come from the single ``audit_head`` row (``UPDATE ... RETURNING``), so they are
gap-free and in commit order on both backends. An entry is canonical JSON of metadata only:
ids, hashes, codes — never content. Statements are built once at import.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.encoding import b64e
from opseal.crypto.merkle import leaf_hash

from .tables import audit_checkpoints, audit_head, audit_leaves

__all__ = [
    "append",
    "append_leaves",
    "checkpoint_body",
    "create_head",
    "encode_entry",
    "insert_checkpoint",
    "leaf_hashes",
    "leaves",
    "leaves_of",
    "newest_checkpoint_body",
    "read_entries",
    "size",
]

_GROW = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(size=audit_head.c.size + bindparam("b_count"))
    .returning(audit_head.c.size)
)
_INSERT_LEAVES = insert(audit_leaves)
_SIZE = select(audit_head.c.size).where(audit_head.c.id == 1)
_RANGE = (audit_leaves.c.idx >= bindparam("start")) & (audit_leaves.c.idx < bindparam("end"))
_LEAF_HASHES = select(audit_leaves.c.leaf_hash).where(_RANGE).order_by(audit_leaves.c.idx)
_ENTRIES = (
    select(audit_leaves.c.idx, audit_leaves.c.entry).where(_RANGE).order_by(audit_leaves.c.idx)
)
_LEAVES = (
    select(audit_leaves.c.idx, audit_leaves.c.entry, audit_leaves.c.leaf_hash)
    .where(_RANGE)
    .order_by(audit_leaves.c.idx)
)
_CHECKPOINT = select(audit_checkpoints.c.body).where(audit_checkpoints.c.size == bindparam("size"))
_NEWEST_CHECKPOINT = (
    select(audit_checkpoints.c.body).order_by(audit_checkpoints.c.size.desc()).limit(1)
)
_NEWEST_CHECKPOINT_TIME = select(func.max(audit_checkpoints.c.created_at))
_INSERT_CHECKPOINT = insert(audit_checkpoints)


def encode_entry(entry: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of one audit entry."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def create_head(conn: AsyncConnection) -> None:
    """Start an empty log (once, at ``init``)."""
    await conn.execute(insert(audit_head), {"id": 1, "size": 0})


async def append(
    conn: AsyncConnection, entries: Sequence[dict[str, Any]], now: int, *, salt: bool = False
) -> int:
    """Append ``entries`` (each with a random ``salt`` if asked) and return the index of the
    first one."""
    return await append_leaves(conn, leaves_of(entries, now, salt=salt), now)


def leaves_of(
    entries: Sequence[dict[str, Any]], now: int, *, salt: bool = False
) -> list[tuple[bytes, bytes]]:
    """``(entry, leaf_hash)`` of each of ``entries`` as appended at ``now``."""
    leaves = []
    for entry in entries:
        extra = {"salt": b64e(secrets.token_bytes(16))} if salt else {}
        data = encode_entry({**entry, "time": now, **extra})
        leaves.append((data, leaf_hash(data)))
    return leaves


async def append_leaves(
    conn: AsyncConnection, leaves: Sequence[tuple[bytes, bytes]], now: int
) -> int:
    """Append ``(entry, leaf_hash)`` leaves made by :func:`leaves_of`; the first one's index."""
    if not leaves:
        return -1
    new_size = int((await conn.execute(_GROW, {"b_count": len(leaves)})).scalar_one())
    first = new_size - len(leaves)
    rows = [
        {"idx": first + offset, "entry": entry, "leaf_hash": hashed, "created_at": now}
        for offset, (entry, hashed) in enumerate(leaves)
    ]
    await conn.execute(_INSERT_LEAVES, rows)
    return first


async def size(conn: AsyncConnection) -> int:
    """The number of leaves in the log."""
    return int((await conn.execute(_SIZE)).scalar_one())


async def leaf_hashes(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    """Leaf hashes of leaves ``start`` to ``end - 1``, in order."""
    return [row[0] for row in await conn.execute(_LEAF_HASHES, {"start": start, "end": end})]


async def read_entries(conn: AsyncConnection, start: int, end: int) -> list[tuple[int, bytes]]:
    """``(index, entry)`` of leaves ``start`` to ``end - 1``, in order."""
    rows = await conn.execute(_ENTRIES, {"start": start, "end": end})
    return [(row[0], row[1]) for row in rows]


async def leaves(conn: AsyncConnection, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
    """``(index, entry, leaf_hash)`` of leaves ``start`` to ``end - 1``, in order."""
    rows = await conn.execute(_LEAVES, {"start": start, "end": end})
    return [(row[0], row[1], row[2]) for row in rows]


async def checkpoint_body(conn: AsyncConnection, size: int) -> bytes | None:
    """The stored checkpoint of exactly ``size`` leaves, or None."""
    return (await conn.execute(_CHECKPOINT, {"size": size})).scalar_one_or_none()


async def newest_checkpoint_body(conn: AsyncConnection) -> bytes | None:
    """The stored checkpoint of the largest size, or None."""
    return (await conn.execute(_NEWEST_CHECKPOINT)).scalar_one_or_none()


async def newest_checkpoint_time(conn: AsyncConnection) -> int | None:
    """When the newest checkpoint was stored (Unix seconds), or None before the first."""
    signed = (await conn.execute(_NEWEST_CHECKPOINT_TIME)).scalar_one_or_none()
    return None if signed is None else int(signed)


async def insert_checkpoint(conn: AsyncConnection, size: int, body: bytes, now: int) -> None:
    """Store the checkpoint of ``size`` leaves; one already stored raises ``IntegrityError``."""
    await conn.execute(_INSERT_CHECKPOINT, {"size": size, "body": body, "created_at": now})
