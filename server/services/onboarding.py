"""Onboarding an organisation's devices without the instance admin (design §3, issue 13).

The instance admin creates an organisation and gives its focal point the first one-time code
(``opseal-server create-org`` prints it). From then on the focal point issues the codes of its
own organisation: its device asks, with a grant signed by the organisation's registered root
key, so neither another organisation's device nor an officer's device of the same
organisation (which holds no root) can mint one. The code itself is made on the focal point's
machine; the server stores only its hash, like every enrolment code.
"""

from __future__ import annotations

from opseal.crypto.encoding import b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey
from opseal.crypto.statements import enrolment_code_message

from ..errors import BadRequest, Conflict, Forbidden, InvalidSignature, NotFound
from ..storage import identity as store
from .base import Context, Principal

__all__ = ["MAX_CODE_TTL", "ORG_KINDS", "issue_enrolment_code", "organisations"]

MAX_CODE_TTL = 30 * 86400
"""The longest a focal point's code may stay valid."""

ORG_KINDS = (
    "customs-administration",
    "secretariat",
    "international-organisation",
    "law-enforcement",
    "other-agency",
    "rights-holder",
    "platform",
    "express-operator",
    "postal-operator",
)
"""The kinds ``opseal-server create-org --kind`` accepts."""


async def issue_enrolment_code(
    ctx: Context,
    principal: Principal,
    org_id: str,
    code_hash: bytes,
    expires_at: int,
    signature: bytes,
) -> int:
    """Store a code hash the organisation's root granted; returns its expiry."""
    if principal.org_id != org_id:
        raise Forbidden(f"only the focal point of {org_id!r} issues its enrolment codes")
    if len(code_hash) != 32:
        raise BadRequest("code_hash: expected a SHA-256 digest (32 bytes)")
    async with ctx.transaction() as tx:
        if not tx.now < expires_at <= tx.now + MAX_CODE_TTL:
            raise BadRequest(f"expires_at: must be within {MAX_CODE_TTL // 86400} days from now")
        row = await store.organisation(tx.conn, org_id)
        if row is None or row.root_key is None:
            raise NotFound(f"organisation {org_id!r} has no registered root key")
        message = enrolment_code_message(ctx.instance.instance_id, org_id, code_hash, expires_at)
        try:
            VerifyKey(row.root_key).verify(signature, message, what="enrolment code grant")
        except CryptoError as exc:
            raise InvalidSignature(
                f"signature: the grant is not signed by the root key of {org_id!r} "
                "(only the focal point, who holds it, issues codes)"
            ) from exc
        if await store.enrolment_code(tx.conn, code_hash) is not None:
            raise Conflict("code_hash: this code was issued already")
        await store.insert_enrolment_code(tx.conn, code_hash, org_id, expires_at, tx.now)
        await tx.audit(
            event="enrolment-code-created",
            org=org_id,
            expires_at=expires_at,
            by=principal.device_id,
        )
    return expires_at


async def organisations(ctx: Context) -> list[dict[str, object]]:
    """Every organisation, with its kind and root fingerprint (None before its enrolment)."""
    async with ctx.engine.connect() as conn:
        rows = await store.all_organisations(conn)
    return [
        {
            "org_id": row.org_id,
            "name": row.name,
            "kind": row.kind,
            "can_coordinate": bool(row.can_coordinate),
            "enrolled": row.root_key is not None,
            "root_key": b64e(row.root_key) if row.root_key else None,
            "fingerprint": VerifyKey(row.root_key).fingerprint if row.root_key else None,
        }
        for row in rows
    ]
