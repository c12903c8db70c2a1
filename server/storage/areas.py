"""Area queries: areas and their sequence heads, rosters (``area_members``), commits with
their sealed secrets, and pending key packages.

An area's ``next_seq`` holds the number of its newest entry; :func:`lock` is the row lock
that serialises writers of one area on PostgreSQL (SQLite runs one writer at a time), and
:func:`move_next_seq` moves it only from the number a writer numbered its entries on. The
entries themselves are in :mod:`.entries`. Statements are built once at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from .db import Record
from .tables import area_members, areas, commit_secrets, commits, devices, key_packages

__all__ = [
    "areas_of_device",
    "create",
    "delete_key_packages",
    "heads",
    "insert_commit",
    "is_member",
    "key_package_bodies",
    "lock",
    "move_next_seq",
    "names",
    "of_operation",
    "replace_key_package",
    "roster",
    "roster_orgs",
    "set_group_state",
    "set_roster",
]

_OP: BindParameter[str] = bindparam("operation_id")
_AREA: BindParameter[str] = bindparam("area")
_DEVICE: BindParameter[str] = bindparam("device_id")
_B_AREA = (areas.c.operation_id == bindparam("b_operation_id")) & (
    areas.c.area == bindparam("b_area")
)

_LOCK = select(areas).where(areas.c.operation_id == _OP, areas.c.area == _AREA).with_for_update()
_NAMES = select(areas.c.area).where(areas.c.operation_id == _OP)
_OF_OPERATION = select(areas.c.area, areas.c.epoch, areas.c.next_seq).where(
    areas.c.operation_id == _OP
)
_HEADS = select(areas.c.operation_id, areas.c.area, areas.c.next_seq)
_INSERT_AREAS = insert(areas)
_MOVE_NEXT_SEQ = (
    update(areas)
    .where(_B_AREA, areas.c.next_seq == bindparam("b_from"))
    .values(next_seq=bindparam("b_seq"))
)
_SET_GROUP_STATE = (
    update(areas).where(_B_AREA).values(epoch=bindparam("b_epoch"), state=bindparam("b_state"))
)

_IN_AREA = (area_members.c.operation_id == _OP) & (area_members.c.area == _AREA)
_IS_MEMBER = select(area_members.c.device_id).where(_IN_AREA, area_members.c.device_id == _DEVICE)
_ROSTER = select(area_members.c.device_id).where(_IN_AREA)
_ROSTER_ORGS = (
    select(area_members.c.device_id, devices.c.org_id)
    .join(devices, devices.c.device_id == area_members.c.device_id)
    .where(_IN_AREA)
)
_AREAS_OF_DEVICE = select(area_members.c.operation_id, area_members.c.area).where(
    area_members.c.device_id == _DEVICE
)
_AREAS_OF_DEVICES = select(
    area_members.c.device_id, area_members.c.operation_id, area_members.c.area
).where(area_members.c.device_id.in_(bindparam("device_ids", expanding=True)))
_DELETE_ROSTER = delete(area_members).where(_IN_AREA)
_INSERT_ROSTER = insert(area_members)

_INSERT_COMMIT = insert(commits)
_INSERT_COMMIT_SECRETS = insert(commit_secrets)

_IN_AREA_KP = (key_packages.c.operation_id == _OP) & (key_packages.c.area == _AREA)
_KEY_PACKAGE_BODIES = select(key_packages.c.body).where(_IN_AREA_KP).order_by(key_packages.c.seq)
_DELETE_KEY_PACKAGE = delete(key_packages).where(_IN_AREA_KP, key_packages.c.device_id == _DEVICE)
_DELETE_KEY_PACKAGES = delete(key_packages).where(
    _IN_AREA_KP, key_packages.c.device_id.in_(bindparam("device_ids", expanding=True))
)
_INSERT_KEY_PACKAGE = insert(key_packages)


def _key(operation_id: str, area: str) -> dict[str, str]:
    return {"operation_id": operation_id, "area": area}


# -- areas ---------------------------------------------------------------------------------
async def lock(conn: AsyncConnection, operation_id: str, area: str) -> Record | None:
    """The area's row, locked for the rest of the transaction (``FOR UPDATE``); None if none."""
    return (await conn.execute(_LOCK, _key(operation_id, area))).first()


async def names(conn: AsyncConnection, operation_id: str) -> set[str]:
    """The names of the operation's areas."""
    return {row[0] for row in await conn.execute(_NAMES, {"operation_id": operation_id})}


async def of_operation(conn: AsyncConnection, operation_id: str) -> list[Record]:
    """``(area, epoch, next_seq)`` of each of the operation's areas."""
    return list(await conn.execute(_OF_OPERATION, {"operation_id": operation_id}))


async def heads(conn: AsyncConnection) -> list[Record]:
    """``(operation_id, area, next_seq)`` of every area on the instance."""
    return list(await conn.execute(_HEADS))


async def create(conn: AsyncConnection, operation_id: str, names: Iterable[str], now: int) -> None:
    """Create empty areas (no epoch, no state, no entries); an existing one raises
    ``IntegrityError``."""
    rows = [
        {**_key(operation_id, name), "epoch": None, "state": None, "next_seq": 0, "created_at": now}
        for name in names
    ]
    if rows:
        await conn.execute(_INSERT_AREAS, rows)


async def move_next_seq(
    conn: AsyncConnection, operation_id: str, area: str, start: int, seq: int
) -> bool:
    """Record ``seq`` as the number of the area's newest entry if it is ``start``; whether
    it was."""
    params = {"b_operation_id": operation_id, "b_area": area, "b_from": start, "b_seq": seq}
    return bool((await conn.execute(_MOVE_NEXT_SEQ, params)).rowcount)


async def set_group_state(
    conn: AsyncConnection, operation_id: str, area: str, epoch: int, state: bytes
) -> None:
    await conn.execute(
        _SET_GROUP_STATE,
        {"b_operation_id": operation_id, "b_area": area, "b_epoch": epoch, "b_state": state},
    )


# -- rosters -------------------------------------------------------------------------------
async def is_member(conn: AsyncConnection, operation_id: str, area: str, device_id: str) -> bool:
    """Whether the device is in the area's roster."""
    params = {**_key(operation_id, area), "device_id": device_id}
    return (await conn.execute(_IS_MEMBER, params)).first() is not None


async def roster(conn: AsyncConnection, operation_id: str, area: str) -> set[str]:
    """The device ids of the area's roster."""
    return set((await conn.execute(_ROSTER, _key(operation_id, area))).scalars())


async def roster_orgs(conn: AsyncConnection, operation_id: str, area: str) -> list[tuple[str, str]]:
    """``(device_id, org_id)`` of each device of the area's roster."""
    rows = await conn.execute(_ROSTER_ORGS, _key(operation_id, area))
    return [(row.device_id, row.org_id) for row in rows]


async def areas_of_device(conn: AsyncConnection, device_id: str) -> list[tuple[str, str]]:
    """``(operation_id, area)`` of every area whose roster holds the device."""
    rows = await conn.execute(_AREAS_OF_DEVICE, {"device_id": device_id})
    return [(row.operation_id, row.area) for row in rows]


async def areas_of_devices(
    conn: AsyncConnection, device_ids: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """:func:`areas_of_device` of many devices in one query (every id is a key)."""
    found: dict[str, list[tuple[str, str]]] = {device_id: [] for device_id in device_ids}
    if device_ids:
        for row in await conn.execute(_AREAS_OF_DEVICES, {"device_ids": list(device_ids)}):
            found[row.device_id].append((row.operation_id, row.area))
    return found


async def set_roster(
    conn: AsyncConnection, operation_id: str, area: str, device_ids: Iterable[str]
) -> None:
    """Make ``device_ids`` the area's whole roster."""
    key = _key(operation_id, area)
    await conn.execute(_DELETE_ROSTER, key)
    await conn.execute(_INSERT_ROSTER, [{**key, "device_id": d} for d in device_ids])


# -- commits -------------------------------------------------------------------------------
async def insert_commit(
    conn: AsyncConnection,
    operation_id: str,
    area: str,
    *,
    epoch: int,
    seq: int,
    hash: bytes,
    sealed: Iterable[tuple[str, bytes]],
) -> None:
    """Store the commit to ``epoch`` and its ``(device_id, ciphertext)`` sealed secrets; a
    second commit to one epoch raises ``IntegrityError``."""
    key = _key(operation_id, area)
    await conn.execute(_INSERT_COMMIT, {**key, "epoch": epoch, "seq": seq, "hash": hash})
    await conn.execute(
        _INSERT_COMMIT_SECRETS,
        [{**key, "epoch": epoch, "device_id": d, "ciphertext": c} for d, c in sealed],
    )


# -- key packages --------------------------------------------------------------------------
async def replace_key_package(
    conn: AsyncConnection,
    operation_id: str,
    area: str,
    device_id: str,
    body: bytes,
    seq: int,
    now: int,
) -> None:
    """Make ``body`` the device's one pending key package in the area."""
    key = {**_key(operation_id, area), "device_id": device_id}
    await conn.execute(_DELETE_KEY_PACKAGE, key)
    await conn.execute(_INSERT_KEY_PACKAGE, {**key, "body": body, "seq": seq, "created_at": now})


async def key_package_bodies(conn: AsyncConnection, operation_id: str, area: str) -> list[bytes]:
    """The area's pending key packages, in the order they were posted."""
    return [row[0] for row in await conn.execute(_KEY_PACKAGE_BODIES, _key(operation_id, area))]


async def delete_key_packages(
    conn: AsyncConnection, operation_id: str, area: str, device_ids: list[str]
) -> None:
    """Drop the pending key packages of ``device_ids`` (they were admitted)."""
    await conn.execute(_DELETE_KEY_PACKAGES, {**_key(operation_id, area), "device_ids": device_ids})
