"""Operation queries: operations, charter versions, member organisations (invitations) and
phases.

Statements are built once at import with named parameters; the rules (who may publish, how
phases move) live in :mod:`opseal.server.services.operations`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from .db import Record
from .tables import charter_versions, operation_members, operations

__all__ = [
    "advance_charter",
    "archived",
    "charter_bodies",
    "charter_body",
    "charter_version",
    "current_versions",
    "exists",
    "get",
    "insert_charter_version",
    "insert_operation",
    "membership",
    "of_organisation",
    "replace_members",
    "set_phase",
]

_OP: BindParameter[str] = bindparam("operation_id")
_GET = select(operations).where(operations.c.operation_id == _OP)
_EXISTS = select(operations.c.operation_id).where(operations.c.operation_id == _OP)
_INSERT = insert(operations)
_MEMBERSHIP = (
    select(operations.c.phase, operations.c.charter_version, operation_members.c.role)
    .select_from(operations)
    .outerjoin(
        operation_members,
        (operation_members.c.operation_id == operations.c.operation_id)
        & (operation_members.c.org_id == bindparam("org_id")),
    )
    .where(operations.c.operation_id == _OP)
)
_CHARTER_VERSION = select(operations.c.charter_version).where(
    operations.c.operation_id == bindparam("operation_id")
)
_CHARTER_VERSIONS = select(operations.c.operation_id, operations.c.charter_version)
_OF_ORGANISATION = (
    select(operations, operation_members.c.role)
    .join(operation_members, operation_members.c.operation_id == operations.c.operation_id)
    .where(operation_members.c.org_id == bindparam("org_id"))
    .order_by(operations.c.created_at)
)
_ADVANCE_CHARTER = (
    update(operations)
    .where(
        operations.c.operation_id == bindparam("b_operation_id"),
        operations.c.charter_version == bindparam("b_from_version"),
    )
    .values(
        charter_version=bindparam("b_version"),
        name=bindparam("b_name"),
        code=bindparam("b_code"),
        starts_at=bindparam("b_starts_at"),
        ends_at=bindparam("b_ends_at"),
    )
)
_SET_PHASE = (
    update(operations)
    .where(operations.c.operation_id == bindparam("b_operation_id"))
    .values(phase=bindparam("b_phase"))
)
_ARCHIVED = select(
    operations.c.operation_id, operations.c.ends_at, operations.c.retention_days
).where(operations.c.phase == "archived")

_CHARTER_BODY = select(charter_versions.c.body).where(
    charter_versions.c.operation_id == _OP, charter_versions.c.version == bindparam("version")
)
_CHARTER_BODIES = (
    select(charter_versions.c.body)
    .where(charter_versions.c.operation_id == _OP)
    .order_by(charter_versions.c.version)
)
_INSERT_CHARTER_VERSION = insert(charter_versions)
_DELETE_MEMBERS = delete(operation_members).where(operation_members.c.operation_id == _OP)
_INSERT_MEMBERS = insert(operation_members)


# -- operations ----------------------------------------------------------------------------
async def get(conn: AsyncConnection, operation_id: str) -> Record | None:
    """The operation's row, or None."""
    return (await conn.execute(_GET, {"operation_id": operation_id})).first()


async def charter_version(conn: AsyncConnection, operation_id: str) -> int | None:
    """The operation's current charter version, or None if it does not exist."""
    return (
        await conn.execute(_CHARTER_VERSION, {"operation_id": operation_id})
    ).scalar_one_or_none()


async def current_versions(conn: AsyncConnection) -> dict[str, int]:
    """Every operation's current charter version."""
    return {row.operation_id: row.charter_version for row in await conn.execute(_CHARTER_VERSIONS)}


async def exists(conn: AsyncConnection, operation_id: str) -> bool:
    return (await conn.execute(_EXISTS, {"operation_id": operation_id})).first() is not None


async def insert_operation(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert an operation row (``values`` names every column); a duplicate id raises
    ``IntegrityError``."""
    await conn.execute(_INSERT, values)


async def membership(conn: AsyncConnection, operation_id: str, org_id: str) -> Record | None:
    """``(phase, charter_version, role)`` of the operation, ``role`` None when ``org_id`` is
    no member; None when the operation does not exist."""
    return (
        await conn.execute(_MEMBERSHIP, {"operation_id": operation_id, "org_id": org_id})
    ).first()


async def of_organisation(conn: AsyncConnection, org_id: str) -> list[Record]:
    """Operations listing ``org_id`` as a member, oldest first, each with the ``role``."""
    return list(await conn.execute(_OF_ORGANISATION, {"org_id": org_id}))


async def advance_charter(
    conn: AsyncConnection,
    operation_id: str,
    from_version: int,
    *,
    version: int,
    name: str,
    code: str,
    starts_at: int,
    ends_at: int,
) -> bool:
    """Move the operation to charter ``version`` if it is still at ``from_version``; False if
    another version got there first."""
    result = await conn.execute(
        _ADVANCE_CHARTER,
        {
            "b_operation_id": operation_id,
            "b_from_version": from_version,
            "b_version": version,
            "b_name": name,
            "b_code": code,
            "b_starts_at": starts_at,
            "b_ends_at": ends_at,
        },
    )
    return result.rowcount == 1


async def set_phase(conn: AsyncConnection, operation_id: str, phase: str) -> None:
    await conn.execute(_SET_PHASE, {"b_operation_id": operation_id, "b_phase": phase})


async def archived(conn: AsyncConnection) -> list[Record]:
    """``(operation_id, ends_at, retention_days)`` of every archived operation."""
    return list(await conn.execute(_ARCHIVED))


# -- charters and members --------------------------------------------------------------------
async def charter_body(conn: AsyncConnection, operation_id: str, version: int) -> bytes:
    """The signed encoding of a stored charter version (it must exist)."""
    result = await conn.execute(_CHARTER_BODY, {"operation_id": operation_id, "version": version})
    return bytes(result.scalar_one())


async def charter_bodies(conn: AsyncConnection, operation_id: str) -> list[bytes]:
    """Every stored charter version's encoding, oldest first."""
    return [row[0] for row in await conn.execute(_CHARTER_BODIES, {"operation_id": operation_id})]


async def insert_charter_version(
    conn: AsyncConnection, operation_id: str, version: int, hash: bytes, body: bytes, now: int
) -> None:
    """Store a charter version; an existing (operation, version) raises ``IntegrityError``."""
    await conn.execute(
        _INSERT_CHARTER_VERSION,
        {
            "operation_id": operation_id,
            "version": version,
            "hash": hash,
            "body": body,
            "created_at": now,
        },
    )


async def replace_members(
    conn: AsyncConnection, operation_id: str, members: Iterable[tuple[str, str]]
) -> None:
    """Make ``(org_id, role)`` pairs the operation's member organisations."""
    await conn.execute(_DELETE_MEMBERS, {"operation_id": operation_id})
    await conn.execute(
        _INSERT_MEMBERS,
        [{"operation_id": operation_id, "org_id": org, "role": role} for org, role in members],
    )
