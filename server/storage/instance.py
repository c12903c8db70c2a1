"""The instance row: its id, audit-log key and token key (one row, written by ``init``)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .db import Record
from .tables import instance

__all__ = ["get", "insert_instance"]

_GET = select(instance)
_INSERT = insert(instance)


async def get(conn: AsyncConnection) -> Record | None:
    """The instance row, or None before ``opseal-server init``."""
    return (await conn.execute(_GET)).first()


async def insert_instance(
    conn: AsyncConnection,
    instance_id: str,
    *,
    log_private_key: bytes,
    log_public_key: bytes,
    token_key: bytes,
    now: int,
) -> None:
    """Write the instance row; a second one raises ``IntegrityError``."""
    await conn.execute(
        _INSERT,
        {
            "id": 1,
            "instance_id": instance_id,
            "log_private_key": log_private_key,
            "log_public_key": log_public_key,
            "token_key": token_key,
            "created_at": now,
        },
    )
