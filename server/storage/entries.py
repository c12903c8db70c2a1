"""Queries over an area's entries (the ``events`` table): messages, commits, key packages and
receipts, numbered by the area's gap-free sequence.

Statements are built once at import; :func:`entries_after` is the hot read of sync, the event
list and the stream's tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import areas, audit
from .db import Record
from .tables import area_members, devices, events, operation_members, operations
from .tables import areas as area_table

__all__ = [
    "AreaMoved",
    "append",
    "append_recorded",
    "by_sender_message_ids",
    "by_senders_message_ids",
    "commit_bodies",
    "entries_after",
    "message",
    "senders_in_roster",
]

_IN_AREA = (events.c.operation_id == bindparam("operation_id")) & (
    events.c.area == bindparam("area")
)
_AFTER = (
    select(events)
    .where(_IN_AREA, events.c.seq > bindparam("after"))
    .order_by(events.c.seq)
    .limit(bindparam("limit"))
)
_APPEND = insert(events)
# append_recorded on PostgreSQL: the entries, the area's sequence and the audit leaves in one
# statement (one round trip, planned once) instead of four, all or nothing — in autocommit, its
# own transaction. ``advanced`` is the gate: it moves the area's sequence only from the number
# the rows were numbered on (and only if the log has its head), and the rest follows from its
# output — no entry without it, no head move without every entry (``head`` reads ``stored``),
# no leaf without the head. Under READ COMMITTED, a writer holding the area's row waits the
# gate out and then fails it. The audit head's row lock orders the leaves as before, and is
# taken after the entries are in: the instance-wide head is held no longer than before.
_APPEND_RECORDED = text("""
WITH advanced AS (
    UPDATE areas SET next_seq = :last_seq
    WHERE operation_id = :operation_id AND area = :area AND next_seq = :start
      AND EXISTS (SELECT 1 FROM audit_head WHERE id = 1)
    RETURNING 1
), stored AS (
    INSERT INTO events
        (operation_id, area, seq, kind, device_id, epoch, message_id, body, created_at)
    SELECT :operation_id, :area, e.seq, e.kind, e.device_id, e.epoch, e.message_id, e.body,
           e.created_at
    FROM unnest(CAST(:seqs AS BIGINT[]), CAST(:kinds AS VARCHAR[]),
                CAST(:device_ids AS VARCHAR[]), CAST(:epochs AS BIGINT[]),
                CAST(:message_ids AS VARCHAR[]), CAST(:bodies AS BYTEA[]),
                CAST(:created_ats AS BIGINT[]))
         AS e(seq, kind, device_id, epoch, message_id, body, created_at)
    WHERE EXISTS (SELECT 1 FROM advanced)
    RETURNING 1
), head AS (
    UPDATE audit_head SET size = size + :leaf_count
    WHERE id = 1 AND (SELECT count(*) FROM stored) = :row_count RETURNING size
)
INSERT INTO audit_leaves (idx, entry, leaf_hash, created_at)
SELECT head.size - :leaf_count + leaf.ord - 1, leaf.entry, leaf.leaf_hash, :now
FROM head, unnest(CAST(:entries AS BYTEA[]), CAST(:leaf_hashes AS BYTEA[]))
     WITH ORDINALITY AS leaf(entry, leaf_hash, ord)
""")
_BY_SENDER_MESSAGE_IDS = select(events.c.message_id, events.c.seq, events.c.body).where(
    _IN_AREA,
    events.c.device_id == bindparam("device_id"),
    events.c.message_id.in_(bindparam("message_ids", expanding=True)),
)
_MESSAGE = select(events.c.device_id, events.c.body).where(
    _IN_AREA,
    events.c.kind == "message",
    events.c.device_id == bindparam("sender_id"),
    events.c.message_id == bindparam("message_id"),
)
_LATEST_MESSAGE_OF = (
    select(events.c.body)
    .where(_IN_AREA, events.c.device_id == bindparam("device_id"), events.c.kind == "message")
    .order_by(events.c.seq.desc())
    .limit(1)
)
_DEVICES = events.c.device_id.in_(bindparam("device_ids", expanding=True))
_BY_SENDERS_MESSAGE_IDS = select(
    events.c.device_id, events.c.message_id, events.c.seq, events.c.body
).where(_IN_AREA, _DEVICES, events.c.message_id.in_(bindparam("message_ids", expanding=True)))
# One index scan backwards per device, as _LATEST_MESSAGE_OF does (a GROUP BY over the area's
# messages would read all of them), driven by the roster so it runs alike on both backends.
_SENDERS_IN_ROSTER = (
    select(
        area_members.c.device_id,
        devices.c.signing_key,
        select(events.c.body)
        .where(
            events.c.operation_id == area_members.c.operation_id,
            events.c.area == area_members.c.area,
            events.c.device_id == area_members.c.device_id,
            events.c.kind == "message",
        )
        .order_by(events.c.seq.desc())
        .limit(1)
        .correlate(area_members)
        .scalar_subquery()
        .label("body"),
        devices.c.org_id,
        operations.c.phase,
        operations.c.charter_version,
        operation_members.c.role,
        area_table.c.next_seq.label("area_next_seq"),
        area_table.c.epoch.label("area_epoch"),
    )
    .join(devices, devices.c.device_id == area_members.c.device_id)
    .join(
        area_table,
        (area_table.c.operation_id == area_members.c.operation_id)
        & (area_table.c.area == area_members.c.area),
    )
    .join(operations, operations.c.operation_id == area_members.c.operation_id)
    .outerjoin(
        operation_members,
        (operation_members.c.operation_id == area_members.c.operation_id)
        & (operation_members.c.org_id == devices.c.org_id),
    )
    .where(
        area_members.c.operation_id == bindparam("operation_id"),
        area_members.c.area == bindparam("area"),
        area_members.c.device_id.in_(bindparam("device_ids", expanding=True)),
    )
)
_COMMIT_BODIES = (
    select(events.c.body)
    .where(_IN_AREA, events.c.kind == "commit", events.c.epoch > bindparam("after_epoch"))
    .order_by(events.c.seq)
)


async def entries_after(
    conn: AsyncConnection, operation_id: str, area: str, after: int, limit: int
) -> list[Any]:
    """Up to ``limit`` entries of an area with sequence numbers above ``after``, in order."""
    params = {"operation_id": operation_id, "area": area, "after": after, "limit": limit}
    return list(await conn.execute(_AFTER, params))


async def append(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert entries (each a dict naming every column); a used ``(operation, area, seq)``, or
    a ``message_id`` the same device already used in the area, raises ``IntegrityError``."""
    await conn.execute(_APPEND, rows)


class AreaMoved(Exception):
    """:func:`append_recorded` wrote nothing: the area's ``next_seq`` was no longer the one
    before its first row (another writer stored in the area since it was read)."""


async def append_recorded(
    conn: AsyncConnection,
    operation_id: str,
    area: str,
    rows: Sequence[dict[str, Any]],
    leaves: Sequence[tuple[bytes, bytes]],
    now: int,
) -> None:
    """:func:`append` the area's new ``rows`` (in sequence order), move its ``next_seq`` to the
    last one's and append their audit ``leaves`` (:func:`.audit.leaves_of`): one statement on
    PostgreSQL, which commits itself on a connection in autocommit. Raises ``IntegrityError``
    as :func:`append` does, and :class:`AreaMoved` if the area's ``next_seq`` is not the one
    before the first row; either way nothing is written."""  # (the log's head always exists)
    start = rows[0]["seq"] - 1
    if conn.dialect.name != "postgresql":
        if not await areas.move_next_seq(conn, operation_id, area, start, rows[-1]["seq"]):
            raise AreaMoved(f"area {area!r}: its sequence is past {start}: nothing stored")
        await append(conn, rows)
        await audit.append_leaves(conn, leaves, now)
        return
    columns = {
        name: [row[column] for row in rows]
        for name, column in [
            ("seqs", "seq"), ("kinds", "kind"), ("device_ids", "device_id"), ("epochs", "epoch"),
            ("message_ids", "message_id"), ("bodies", "body"), ("created_ats", "created_at"),
        ]
    }  # fmt: skip
    result = await conn.execute(
        _APPEND_RECORDED,
        {
            "operation_id": operation_id,
            "area": area,
            **columns,
            "row_count": len(rows),
            "start": start,
            "last_seq": rows[-1]["seq"],
            "leaf_count": len(leaves),
            "entries": [entry for entry, _ in leaves],
            "leaf_hashes": [hashed for _, hashed in leaves],
            "now": now,
        },
    )
    if result.rowcount == 0:  # the area moved on (or the log has no head: nothing unaudited)
        raise AreaMoved(
            f"area {area!r}: nothing stored: its sequence is no longer {start}"
            " (or the audit log has no head)"
        )
    if result.rowcount != len(leaves):  # cannot happen: every leaf follows the head's move
        raise RuntimeError(f"audit log: {result.rowcount} of {len(leaves)} leaves appended")


async def by_sender_message_ids(
    conn: AsyncConnection, operation_id: str, area: str, device_id: str, message_ids: list[str]
) -> dict[str, Record]:
    """The device's stored entries in the area among ``message_ids``, by message id, each
    with ``seq`` and ``body``. Other devices' use of the same ids is not looked at."""
    params = {
        "operation_id": operation_id,
        "area": area,
        "device_id": device_id,
        "message_ids": message_ids,
    }
    return {row.message_id: row for row in await conn.execute(_BY_SENDER_MESSAGE_IDS, params)}


async def message(
    conn: AsyncConnection, operation_id: str, area: str, sender_id: str, message_id: str
) -> Record | None:
    """``(device_id, body)`` of the sender's message ``message_id`` in the area, or None
    (unique: message ids are unique per operation, area and sender)."""
    params = {
        "operation_id": operation_id,
        "area": area,
        "sender_id": sender_id,
        "message_id": message_id,
    }
    return (await conn.execute(_MESSAGE, params)).first()


async def commit_bodies(
    conn: AsyncConnection, operation_id: str, area: str, after_epoch: int
) -> list[bytes]:
    """The area's commits to epochs after ``after_epoch``, oldest first."""
    params = {"operation_id": operation_id, "area": area, "after_epoch": after_epoch}
    return [row[0] for row in await conn.execute(_COMMIT_BODIES, params)]


async def latest_message_of(
    conn: AsyncConnection, operation_id: str, area: str, device_id: str
) -> bytes | None:
    """The body of the device's latest message in the area, or None before its first."""
    result = await conn.execute(
        _LATEST_MESSAGE_OF, {"operation_id": operation_id, "area": area, "device_id": device_id}
    )
    body: bytes | None = result.scalar()
    return body


async def by_senders_message_ids(
    conn: AsyncConnection, operation_id: str, area: str, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Record]:
    """:func:`by_sender_message_ids` for several devices at once: the stored entries among the
    ``(device_id, message_id)`` pairs, by pair."""
    params = {
        "operation_id": operation_id,
        "area": area,
        "device_ids": sorted({device for device, _ in wanted}),
        "message_ids": sorted({message_id for _, message_id in wanted}),
    }
    pairs = set(wanted)
    rows = await conn.execute(_BY_SENDERS_MESSAGE_IDS, params)
    return {key: row for row in rows if (key := (row.device_id, row.message_id)) in pairs}


async def senders_in_roster(
    conn: AsyncConnection, operation_id: str, area: str, device_ids: Sequence[str]
) -> dict[str, Record]:
    """Those of ``device_ids`` in the area's roster, by device, in one query: its public
    signing key (``signing_key``), its latest message (``body``, :func:`latest_message_of`;
    None before its first), and its organisation's membership of the operation as
    :func:`.operations.membership` reads it (``org_id``, ``phase``, ``charter_version``,
    ``role``: None if the organisation is no member), and the area's ``next_seq`` and
    ``epoch`` as the same statement saw them (``area_next_seq``, ``area_epoch``)."""
    params = {"operation_id": operation_id, "area": area, "device_ids": list(device_ids)}
    rows = await conn.execute(_SENDERS_IN_ROSTER, params)
    return {row.device_id: row for row in rows}
