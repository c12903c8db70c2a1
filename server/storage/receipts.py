"""Receipt queries: signed read and acknowledgement statements, one per (message, device,
kind), where a message is named as the server keeps it unique — (operation, area, sending
device, message id). Statements are built once at import."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .db import Record
from .tables import receipts

__all__ = ["MessageKey", "for_message", "get", "insert_receipt"]


class MessageKey(NamedTuple):
    """A message as the server keeps it unique."""

    operation_id: str
    area: str
    sender_id: str
    message_id: str


_MESSAGE = (
    (receipts.c.operation_id == bindparam("operation_id"))
    & (receipts.c.area == bindparam("area"))
    & (receipts.c.sender_id == bindparam("sender_id"))
    & (receipts.c.message_id == bindparam("message_id"))
)
_GET = select(receipts).where(
    _MESSAGE, receipts.c.device_id == bindparam("device_id"), receipts.c.kind == bindparam("kind")
)
_FOR_MESSAGE = select(receipts).where(_MESSAGE)
_INSERT = insert(receipts)


async def get(
    conn: AsyncConnection, message: MessageKey, device_id: str, kind: str
) -> Record | None:
    """The stored receipt of ``kind`` by the device for the message, or None."""
    params = {**message._asdict(), "device_id": device_id, "kind": kind}
    return (await conn.execute(_GET, params)).first()


async def for_message(conn: AsyncConnection, message: MessageKey) -> list[Record]:
    """Every stored receipt for the message."""
    return list(await conn.execute(_FOR_MESSAGE, message._asdict()))


async def insert_receipt(
    conn: AsyncConnection,
    message: MessageKey,
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
            **message._asdict(),
            "device_id": device_id,
            "kind": kind,
            "org_id": org_id,
            "statement": statement,
            "created_at": now,
        },
    )
