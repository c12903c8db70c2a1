"""Receipt queries: signed read and acknowledgement statements, one per (message, device,
kind). Statements are built once at import."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .db import Record
from .tables import receipts

__all__ = ["for_message", "get", "insert_receipt"]

_MESSAGE = receipts.c.message_id == bindparam("message_id")
_GET = select(receipts).where(
    _MESSAGE, receipts.c.device_id == bindparam("device_id"), receipts.c.kind == bindparam("kind")
)
_FOR_MESSAGE = select(receipts).where(_MESSAGE)
_INSERT = insert(receipts)


async def get(conn: AsyncConnection, message_id: str, device_id: str, kind: str) -> Record | None:
    """The stored receipt of ``kind`` by the device for the message, or None."""
    params = {"message_id": message_id, "device_id": device_id, "kind": kind}
    return (await conn.execute(_GET, params)).first()


async def for_message(conn: AsyncConnection, message_id: str) -> list[Record]:
    """Every stored receipt for the message."""
    return list(await conn.execute(_FOR_MESSAGE, {"message_id": message_id}))


async def insert_receipt(
    conn: AsyncConnection,
    message_id: str,
    device_id: str,
    kind: str,
    *,
    org_id: str,
    statement: bytes,
    now: int,
) -> None:
    """Store a receipt; a second one for (message, device, kind) raises ``IntegrityError``."""
    await conn.execute(
        _INSERT,
        {
            "message_id": message_id,
            "device_id": device_id,
            "kind": kind,
            "org_id": org_id,
            "statement": statement,
            "created_at": now,
        },
    )
