"""Instance administration: initialisation, organisations and enrolment codes.

These run from ``opseal-server`` on the server host: the instance admin (the secretariat)
operates the server but holds no organisation key and can read no content.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey

from ..errors import BadRequest, Conflict, NotFound
from ..storage import audit, identity
from ..storage import instance as store
from ..storage.db import write_transaction
from .base import Context

__all__ = [
    "create_enrolment_code",
    "create_organisation",
    "first_enrolment_code",
    "hash_code",
    "initialise",
    "status",
]

CODE_TTL = 7 * 86400


def hash_code(code: str) -> bytes:
    """Enrolment codes are stored only as their SHA-256 (they are 128-bit random)."""
    return hashlib.sha256(code.strip().encode()).digest()


async def initialise(engine: AsyncEngine, now: int) -> str:
    """Create the instance's identity, log key and token key; returns the instance id."""
    async with write_transaction(engine) as conn:
        if await store.get(conn) is not None:
            raise Conflict("the instance is already initialised")
        log_key = SigningKey.generate()
        instance_id = f"opseal-{uuid.uuid4().hex[:12]}"
        await store.insert_instance(
            conn,
            instance_id,
            log_private_key=log_key.private_bytes(),
            log_public_key=log_key.verify_key.raw,
            token_key=os.urandom(32),
            now=now,
        )
        await audit.create_head(conn)
        await audit.append(conn, [{"event": "instance-initialised", "instance": instance_id}], now)
    return instance_id


async def create_organisation(
    ctx: Context, org_id: str, name: str, kind: str, *, can_coordinate: bool = False
) -> None:
    """Register an organisation; its focal point enrols with a code and sets its root key."""
    if not org_id or len(org_id) > 128 or not org_id.replace("-", "").isalnum():
        raise BadRequest("organisation id: expected 1-128 letters, digits and dashes")
    async with ctx.transaction() as tx:
        if await identity.organisation(tx.conn, org_id) is not None:
            raise Conflict(f"organisation {org_id!r} already exists")
        await identity.insert_organisation(tx.conn, org_id, name, kind, can_coordinate, tx.now)
        await tx.audit(event="organisation-created", org=org_id, can_coordinate=can_coordinate)


async def create_enrolment_code(
    ctx: Context, org_id: str, *, ttl: int = CODE_TTL, before_root: bool = False
) -> str:
    """A one-time code for enrolling one user and device of ``org_id``; with ``before_root``,
    only while the organisation has no root key (checked in the same transaction)."""
    code = "-".join(secrets.token_hex(4) for _ in range(4))
    async with ctx.transaction() as tx:
        # Locked: a focal point's enrolment registering the root meanwhile waits, or is seen.
        row = await identity.organisation(tx.conn, org_id, lock=before_root)
        if row is None:
            raise NotFound(f"organisation {org_id!r} does not exist")
        if before_root and row.root_key is not None:
            raise Conflict(
                f"{org_id!r} has enrolled its focal point already; its focal point issues its "
                "codes (`opseal org enrol-code`)"
            )
        await identity.insert_enrolment_code(tx.conn, hash_code(code), org_id, tx.now + ttl, tx.now)
        await tx.audit(event="enrolment-code-created", org=org_id, expires_at=tx.now + ttl)
    return code


async def first_enrolment_code(ctx: Context, org_id: str, *, ttl: int = CODE_TTL) -> str:
    """The focal point's first code, from the instance admin: only while the organisation has
    no root key. Afterwards the focal point issues its organisation's codes itself
    (:func:`opseal.server.services.onboarding.issue_enrolment_code`), so the instance admin,
    who can read nothing, cannot enrol anyone into an organisation either."""
    return await create_enrolment_code(ctx, org_id, ttl=ttl, before_root=True)


async def status(ctx: Context) -> dict[str, object]:
    """Counts an operator checks: organisations, audit log size, the log key."""
    async with ctx.engine.connect() as conn:
        orgs = await identity.count_organisations(conn)
        size = await audit.size(conn)
    return {
        "instance_id": ctx.instance.instance_id,
        "organisations": orgs,
        "audit_log_size": size,
        "log_key": b64e(ctx.instance.log_key.verify_key.raw),
        "log_key_fingerprint": ctx.instance.log_key.verify_key.fingerprint,
    }
