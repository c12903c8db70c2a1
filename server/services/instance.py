"""Instance administration: initialisation, organisations and enrolment codes.

These run from ``opseal-server`` on the server host: the instance admin (the secretariat)
operates the server but holds no organisation key and can read no content.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey

from ..errors import BadRequest, Conflict, NotFound
from ..storage import audit
from ..storage.db import write_transaction
from ..storage.tables import audit_head, enrolment_codes, instance, organisations
from .base import Context

__all__ = ["create_enrolment_code", "create_organisation", "hash_code", "initialise", "status"]

CODE_TTL = 7 * 86400


def hash_code(code: str) -> bytes:
    """Enrolment codes are stored only as their SHA-256 (they are 128-bit random)."""
    return hashlib.sha256(code.strip().encode()).digest()


async def initialise(engine: AsyncEngine, now: int) -> str:
    """Create the instance's identity, log key and token key; returns the instance id."""
    async with write_transaction(engine) as conn:
        if (await conn.execute(select(instance.c.id))).first() is not None:
            raise Conflict("the instance is already initialised")
        log_key = SigningKey.generate()
        instance_id = f"opseal-{uuid.uuid4().hex[:12]}"
        await conn.execute(
            insert(instance).values(
                id=1,
                instance_id=instance_id,
                log_private_key=log_key.private_bytes(),
                log_public_key=log_key.verify_key.raw,
                token_key=os.urandom(32),
                created_at=now,
            )
        )
        await conn.execute(insert(audit_head).values(id=1, size=0))
        await audit.append(conn, [{"event": "instance-initialised", "instance": instance_id}], now)
    return instance_id


async def create_organisation(
    ctx: Context, org_id: str, name: str, kind: str, *, can_coordinate: bool = False
) -> None:
    """Register an organisation; its focal point enrols with a code and sets its root key."""
    if not org_id or len(org_id) > 128 or not org_id.replace("-", "").isalnum():
        raise BadRequest("organisation id: expected 1-128 letters, digits and dashes")
    async with ctx.transaction() as tx:
        exists = await tx.conn.execute(
            select(organisations.c.org_id).where(organisations.c.org_id == org_id)
        )
        if exists.first() is not None:
            raise Conflict(f"organisation {org_id!r} already exists")
        await tx.conn.execute(
            insert(organisations).values(
                org_id=org_id,
                name=name,
                kind=kind,
                root_key=None,
                can_coordinate=can_coordinate,
                created_at=tx.now,
            )
        )
        await tx.audit(event="organisation-created", org=org_id, can_coordinate=can_coordinate)


async def create_enrolment_code(ctx: Context, org_id: str, *, ttl: int = CODE_TTL) -> str:
    """A one-time code for enrolling one user and device of ``org_id``."""
    code = "-".join(secrets.token_hex(4) for _ in range(4))
    async with ctx.transaction() as tx:
        org = await tx.conn.execute(
            select(organisations.c.org_id).where(organisations.c.org_id == org_id)
        )
        if org.first() is None:
            raise NotFound(f"organisation {org_id!r} does not exist")
        await tx.conn.execute(
            insert(enrolment_codes).values(
                code_hash=hash_code(code),
                org_id=org_id,
                expires_at=tx.now + ttl,
                used_at=None,
                created_at=tx.now,
            )
        )
        await tx.audit(event="enrolment-code-created", org=org_id, expires_at=tx.now + ttl)
    return code


async def status(ctx: Context) -> dict[str, object]:
    """Counts an operator checks: organisations, audit log size, the log key."""
    async with ctx.engine.connect() as conn:
        orgs = (await conn.execute(select(func.count()).select_from(organisations))).scalar_one()
        size = await audit.size(conn)
    return {
        "instance_id": ctx.instance.instance_id,
        "organisations": orgs,
        "audit_log_size": size,
        "log_key": b64e(ctx.instance.log_key.verify_key.raw),
        "log_key_fingerprint": ctx.instance.log_key.verify_key.fingerprint,
    }
