"""Rows the storage tests build on, written through the storage functions themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opseal.server.storage import areas, identity, operations
from opseal.server.storage.db import make_engine, write_transaction

NOW = 1_700_000_000
OP = "op-stop-v"


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's database, disposed afterwards."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def tx(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A committed write transaction, as the services open them."""
    async with write_transaction(engine) as conn:
        yield conn


async def org(conn: AsyncConnection, org_id: str, *, coordinate: bool = False) -> None:
    await identity.insert_organisation(conn, org_id, org_id.upper(), "customs", coordinate, NOW)


async def user(conn: AsyncConnection, org_id: str, user_id: str, key_id: bytes) -> None:
    await identity.insert_user(
        conn,
        org_id,
        user_id,
        kind="person",
        name=user_id,
        identity_key_id=key_id,
        certificate=b"cert:" + user_id.encode(),
        expires_at=NOW + 1000,
        now=NOW,
    )


async def device(
    conn: AsyncConnection, org_id: str, user_id: str, device_id: str, key_id: bytes
) -> None:
    await identity.insert_device(
        conn,
        device_id,
        org_id=org_id,
        user_id=user_id,
        signing_key=b"pk:" + device_id.encode(),
        key_id=key_id,
        certificate=b"cert:" + device_id.encode(),
        expires_at=NOW + 1000,
        now=NOW,
    )


def operation_row(operation_id: str = OP, *, created_at: int = NOW, **changes: Any) -> dict:
    return {
        "operation_id": operation_id,
        "code": "STOP-V",
        "name": "Stop V",
        "phase": "preparation",
        "starts_at": NOW,
        "ends_at": NOW + 86400,
        "retention_days": 30,
        "charter_version": 1,
        "created_by": "wco",
        "created_at": created_at,
        **changes,
    }


async def operation(
    conn: AsyncConnection, operation_id: str = OP, area_names: tuple[str, ...] = ("seizures",)
) -> None:
    """An operation with charter version 1, 'wco' as coordinator and empty areas."""
    await operations.insert_operation(conn, operation_row(operation_id))
    await operations.insert_charter_version(conn, operation_id, 1, b"h1", b"charter-1", NOW)
    await operations.replace_members(conn, operation_id, [("wco", "coordinator")])
    await areas.create(conn, operation_id, area_names, NOW)


def entry(seq: int, kind: str = "message", *, area: str = "seizures", **extra: Any) -> dict:
    """An ``events`` row of the seeded operation."""
    return {
        "operation_id": OP,
        "area": area,
        "seq": seq,
        "kind": kind,
        "device_id": "dev-a",
        "epoch": extra.get("epoch", 0),
        "message_id": extra.get("message_id"),
        "body": extra.get("body", f"body-{seq}".encode()),
        "created_at": NOW + seq,
    }
