"""Operations: charters, membership, phases, and the access checks every area request runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.charter import Charter, verify_charter_chain, verify_successor
from opseal.crypto.encoding import b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey

from ..bus import Event
from ..errors import BadRequest, Conflict, Forbidden, NotFound, NotMember, PhaseClosed
from ..storage import areas as area_store
from ..storage import identity as identity_store
from ..storage import operations as store
from .base import Context, Principal

__all__ = [
    "PHASES",
    "WRITABLE_PHASES",
    "Membership",
    "charter_history",
    "create_operation",
    "get_operation",
    "list_operations",
    "membership",
    "publish_charter",
    "set_phase",
]

PHASES = ("preparation", "active", "follow-up", "closed", "archived")
WRITABLE_PHASES = frozenset(PHASES[:3])


@dataclass(frozen=True)
class Membership:
    """An authenticated device's standing in an operation."""

    operation_id: str
    phase: str
    role: str
    charter: Charter

    def check_writable(self) -> None:
        if self.phase not in WRITABLE_PHASES:
            raise PhaseClosed(f"operation is {self.phase}: nothing more can be posted")

    def check_area(self, area: str, *, post: bool = False) -> None:
        try:
            self.charter.area(area)
        except CryptoError as exc:
            raise NotFound(str(exc)) from exc
        allowed = self.charter.may_post if post else self.charter.may_read
        if not allowed(self.role, area):
            verb = "post in" if post else "read"
            raise Forbidden(f"role {self.role!r} may not {verb} area {area!r}")


def _parse(body: bytes) -> Charter:
    try:
        return Charter.from_bytes(body)
    except CryptoError as exc:
        raise BadRequest(f"charter: {exc}") from exc


async def _charter(
    conn: AsyncConnection, cache: dict[tuple[str, int], Charter], operation_id: str, version: int
) -> Charter:
    key = (operation_id, version)
    if key not in cache:
        body = await store.charter_body(conn, operation_id, version)
        cache[key] = Charter.from_bytes(body)
    return cache[key]


async def membership(
    ctx: Context,
    conn: AsyncConnection,
    principal: Principal,
    operation_id: str,
    row: Any = None,
) -> Membership:
    """The principal's role in the operation; :class:`NotMember` if its organisation has none.
    ``row``: the operation's ``phase`` and ``charter_version`` with the organisation's ``role``
    as another query already read them in this transaction (a group of single posts reads them
    with its senders); read here if None."""
    if row is None:
        row = await store.membership(conn, operation_id, principal.org_id)
    if row is None:
        raise NotFound(f"operation {operation_id!r} does not exist")
    if row.role is None:
        raise NotMember(f"organisation {principal.org_id!r} is not a member of this operation")
    if row.phase == "archived":
        raise PhaseClosed("operation is archived")
    charter = await _charter(conn, ctx.charters, operation_id, row.charter_version)
    return Membership(operation_id, row.phase, row.role, charter)


async def _check_members_registered(conn: AsyncConnection, charter: Charter) -> None:
    registered = await identity_store.root_keys(conn, [m.organisation_id for m in charter.members])
    for member in charter.members:
        if member.organisation_id not in registered:
            raise BadRequest(f"charter: organisation {member.organisation_id!r} is not registered")
        if registered[member.organisation_id] != member.root_key.raw:
            raise BadRequest(
                f"charter: root key of {member.organisation_id!r} differs from the registered one"
            )


async def _store_version(conn: AsyncConnection, charter: Charter, now: int) -> None:
    await store.insert_charter_version(
        conn, charter.operation_id, charter.version, charter.hash, charter.to_bytes(), now
    )
    await store.replace_members(
        conn, charter.operation_id, [(m.organisation_id, m.role) for m in charter.members]
    )
    existing = await area_store.names(conn, charter.operation_id)
    new = [a.name for a in charter.areas if a.name not in existing]
    await area_store.create(conn, charter.operation_id, new, now)


async def create_operation(
    ctx: Context, principal: Principal, body: bytes, retention_days: int
) -> dict[str, Any]:
    """A coordinator organisation publishes charter version 1 of a new operation."""
    charter = _parse(body)
    if charter.version != 1:
        raise BadRequest("charter: a new operation starts at version 1")
    if not 1 <= retention_days <= 3650:
        raise BadRequest("retention_days: expected 1 to 3650")
    async with ctx.transaction() as tx:
        org = await identity_store.organisation(tx.conn, principal.org_id)
        assert org is not None  # an authenticated device's organisation exists
        if not org.can_coordinate:
            raise Forbidden(f"organisation {principal.org_id!r} may not coordinate operations")
        if charter.signer is None or charter.signer.organisation_id != principal.org_id:
            raise BadRequest("charter: must be signed by a coordinator of your organisation")
        try:
            pinned = VerifyKey(org.root_key).key_id
            revoked = await identity_store.revoked_key_ids(tx.conn)
            verify_charter_chain([charter], pinned_root_key_id=pinned, now=tx.now, revoked=revoked)
        except CryptoError as exc:
            raise BadRequest(f"charter: {exc}") from exc
        if await store.exists(tx.conn, charter.operation_id):
            raise Conflict(f"operation {charter.operation_id!r} already exists")
        await _check_members_registered(tx.conn, charter)
        await store.insert_operation(
            tx.conn,
            {
                "operation_id": charter.operation_id,
                "code": charter.code,
                "name": charter.name,
                "phase": "preparation",
                "starts_at": charter.starts_at,
                "ends_at": charter.ends_at,
                "retention_days": retention_days,
                "charter_version": 1,
                "created_by": principal.org_id,
                "created_at": tx.now,
            },
        )
        await _store_version(tx.conn, charter, tx.now)
        await tx.audit(
            event="operation-created",
            operation=charter.operation_id,
            charter_hash=b64e(charter.hash),
            by=principal.device_id,
        )
    return {"operation_id": charter.operation_id, "charter_version": 1}


async def publish_charter(
    ctx: Context, principal: Principal, operation_id: str, body: bytes
) -> dict[str, Any]:
    """A coordinator publishes the next charter version (members, roles, areas)."""
    new = _parse(body)
    # The stream hub reads this operation's version from the database until the commit is
    # over, so no entry stored after it is delivered under the old version (design §15).
    ctx.charter_versions.changing(operation_id)
    try:
        return await _publish(ctx, principal, operation_id, new)
    finally:
        ctx.charter_versions.settled(operation_id)


async def _publish(
    ctx: Context, principal: Principal, operation_id: str, new: Charter
) -> dict[str, Any]:
    async with ctx.transaction() as tx:
        member = await membership(ctx, tx.conn, principal, operation_id)
        member.check_writable()
        if member.role != "coordinator":
            raise Forbidden("only a coordinator publishes charter versions")
        try:
            revoked = await identity_store.revoked_key_ids(tx.conn)
            verify_successor(member.charter, new, now=tx.now, revoked=revoked)
        except CryptoError as exc:
            if new.version <= member.charter.version:
                raise Conflict(f"charter: version {new.version} already exists") from exc
            raise BadRequest(f"charter: {exc}") from exc
        await _check_members_registered(tx.conn, new)
        advanced = await store.advance_charter(
            tx.conn,
            operation_id,
            member.charter.version,
            version=new.version,
            name=new.name,
            code=new.code,
            starts_at=new.starts_at,
            ends_at=new.ends_at,
        )
        if not advanced:
            raise Conflict("charter: another version was published concurrently")
        await _store_version(tx.conn, new, tx.now)
        await tx.audit(
            event="charter-published",
            operation=operation_id,
            version=new.version,
            charter_hash=b64e(new.hash),
            by=principal.device_id,
        )
        tx.publish(Event(operation_id, "", new.version, kind="charter"))  # to other nodes
    return {"operation_id": operation_id, "charter_version": new.version}


async def set_phase(ctx: Context, principal: Principal, operation_id: str, phase: str) -> str:
    """A coordinator moves the operation forward through its phases."""
    if phase not in PHASES:
        raise BadRequest(f"phase: expected one of {', '.join(PHASES)}")
    async with ctx.transaction() as tx:
        member = await membership(ctx, tx.conn, principal, operation_id)
        if member.role != "coordinator":
            raise Forbidden("only a coordinator changes the phase")
        if PHASES.index(phase) <= PHASES.index(member.phase):
            raise Conflict(f"phase: cannot go from {member.phase} to {phase}")
        await store.set_phase(tx.conn, operation_id, phase)
        await tx.audit(
            event="phase-changed",
            operation=operation_id,
            phase=phase,
            previous=member.phase,
            by=principal.device_id,
        )
    return phase


async def list_operations(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    """Operations whose current charter lists the principal's organisation (its invitations)."""
    async with ctx.engine.connect() as conn:
        rows = await store.of_organisation(conn, principal.org_id)
        return [_operation_json(row, row.role) for row in rows]


def _operation_json(row: Any, role: str) -> dict[str, Any]:
    return {
        "operation_id": row.operation_id,
        "code": row.code,
        "name": row.name,
        "phase": row.phase,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "charter_version": row.charter_version,
        "coordinator_org": row.created_by,
        "role": role,
        "retention_days": row.retention_days,
    }


async def get_operation(ctx: Context, principal: Principal, operation_id: str) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        member = await membership(ctx, conn, principal, operation_id)
        row = await store.get(conn, operation_id)
        assert row is not None  # membership() found it
        area_rows = await area_store.of_operation(conn, operation_id)
        readable = [
            {"area": a.area, "epoch": a.epoch, "last_seq": a.next_seq}
            for a in area_rows
            if member.charter.may_read(member.role, a.area)
        ]
    return {**_operation_json(row, member.role), "areas": readable}


async def charter_history(ctx: Context, principal: Principal, operation_id: str) -> list[str]:
    """Every charter version, oldest first, as base64url of the signed encoding."""
    async with ctx.engine.connect() as conn:
        await membership(ctx, conn, principal, operation_id)
        return [b64e(body) for body in await store.charter_bodies(conn, operation_id)]
