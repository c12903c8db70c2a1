"""Operation storage (operations, charter versions, member organisations, phases) on every
backend, without the HTTP layer or the services' rules."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from opseal.server.storage import operations

from .storage_seed import NOW, OP, opened, operation, operation_row, org, tx


@pytest.fixture
async def engine(database_url):
    async with opened(database_url) as engine:
        async with tx(engine) as conn:
            for org_id in ("wco", "fr", "de"):
                await org(conn, org_id)
        yield engine


async def test_an_operation_round_trips_and_its_id_is_unique(engine):
    """An operation reads back as inserted; a second one with its id raises."""
    async with tx(engine) as conn:
        await operation(conn)
    async with engine.connect() as conn:
        row = await operations.get(conn, OP)
        assert dict(row._mapping) == operation_row()
        assert await operations.exists(conn, OP)
        assert not await operations.exists(conn, "other")
        assert await operations.get(conn, "other") is None
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await operations.insert_operation(conn, operation_row(name="again"))


async def test_membership_gives_the_role_of_members_only(engine):
    """Membership names phase, charter version and the role; a non-member gets no role and an
    unknown operation no row."""
    async with tx(engine) as conn:
        await operation(conn)
    async with engine.connect() as conn:
        row = await operations.membership(conn, OP, "wco")
        assert tuple(row) == ("preparation", 1, "coordinator")
        assert (await operations.membership(conn, OP, "fr")).role is None
        assert await operations.membership(conn, "other", "wco") is None


async def test_replacing_members_keeps_only_the_new_list(engine):
    """After a replacement exactly the new organisations are members, with their new roles."""
    async with tx(engine) as conn:
        await operation(conn)
        await operations.replace_members(conn, OP, [("fr", "partner"), ("de", "customs")])
    async with engine.connect() as conn:
        assert (await operations.membership(conn, OP, "wco")).role is None
        assert (await operations.membership(conn, OP, "fr")).role == "partner"
        assert (await operations.membership(conn, OP, "de")).role == "customs"


async def test_operations_of_an_organisation_come_oldest_first_with_its_role(engine):
    """An organisation's operations are listed by creation time, each with its role there."""
    async with tx(engine) as conn:
        for operation_id, created in (("op-b", NOW + 5), ("op-a", NOW + 9), ("op-c", NOW)):
            await operations.insert_operation(conn, operation_row(operation_id, created_at=created))
            await operations.replace_members(conn, operation_id, [("fr", f"role-{operation_id}")])
        await operations.replace_members(conn, "op-a", [("de", "customs")])
    async with engine.connect() as conn:
        rows = await operations.of_organisation(conn, "fr")
        assert [(r.operation_id, r.role) for r in rows] == [
            ("op-c", "role-op-c"),
            ("op-b", "role-op-b"),
        ]
        assert await operations.of_organisation(conn, "wco") == []


async def test_charter_versions_are_unique_and_read_in_version_order(engine):
    """Charter versions read back oldest first; storing an existing version raises."""
    async with tx(engine) as conn:
        await operation(conn)
        await operations.insert_charter_version(conn, OP, 3, b"h3", b"charter-3", NOW)
        await operations.insert_charter_version(conn, OP, 2, b"h2", b"charter-2", NOW)
    async with engine.connect() as conn:
        assert await operations.charter_bodies(conn, OP) == [
            b"charter-1",
            b"charter-2",
            b"charter-3",
        ]
        assert await operations.charter_body(conn, OP, 2) == b"charter-2"
        assert await operations.charter_bodies(conn, "other") == []
    with pytest.raises(IntegrityError):
        async with tx(engine) as conn:
            await operations.insert_charter_version(conn, OP, 2, b"hx", b"other", NOW)


async def test_advancing_the_charter_succeeds_only_from_the_current_version(engine):
    """The compare-and-set moves version 1 to 2 once; a second move from 1 changes nothing."""
    fields = {"name": "Stop V2", "code": "SV2", "starts_at": NOW + 1, "ends_at": NOW + 2}
    async with tx(engine) as conn:
        await operation(conn)
        assert await operations.advance_charter(conn, OP, 1, version=2, **fields)
        assert not await operations.advance_charter(
            conn, OP, 1, version=3, **fields | {"name": "X"}
        )
    async with engine.connect() as conn:
        row = await operations.get(conn, OP)
        assert (row.charter_version, row.name, row.code, row.starts_at, row.ends_at) == (
            2,
            "Stop V2",
            "SV2",
            NOW + 1,
            NOW + 2,
        )


async def test_phases_are_stored_and_archived_operations_listed(engine):
    """A stored phase reads back, and only archived operations are listed for retention."""
    async with tx(engine) as conn:
        await operation(conn)
        await operations.insert_operation(conn, operation_row("op-2", retention_days=7))
        await operations.set_phase(conn, "op-2", "archived")
    async with engine.connect() as conn:
        assert (await operations.get(conn, OP)).phase == "preparation"
        assert [tuple(r) for r in await operations.archived(conn)] == [("op-2", NOW + 86400, 7)]
