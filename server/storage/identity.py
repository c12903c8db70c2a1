"""Identity queries: organisations, users, devices, revocations, enrolment codes, login
challenges and sessions.

Statements are built once at import, with named parameters, so a call costs only the
execution (SQLAlchemy caches their compiled form). Rows come back as SQLAlchemy rows; the
rules about them live in :mod:`opseal.server.services.identity`.

Long because: one aggregate — an organisation's keys, users (with their certificate
history), devices, revocations, codes and sessions — whose statements are built together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from .db import Record
from .tables import (
    challenges,
    devices,
    enrolment_codes,
    organisations,
    revocations,
    sessions,
    user_certificates,
    users,
)

__all__ = [
    "all_organisations",
    "certified_user_key",
    "count_organisations",
    "delete_expired_challenges",
    "delete_session",
    "device_by_key",
    "device_exists",
    "device_ids_of_user",
    "device_org",
    "device_signing_key",
    "device_with_user",
    "devices_of_users_with_key",
    "enrolment_code",
    "insert_challenge",
    "insert_device",
    "insert_enrolment_code",
    "insert_organisation",
    "insert_revocation",
    "insert_session",
    "insert_user",
    "organisation",
    "reinstate_user",
    "revocations_after",
    "revoke_devices",
    "revoke_users_with_key",
    "revoked_key_ids",
    "root_keys",
    "session_principals",
    "set_root_key",
    "take_challenge",
    "update_user_certificate",
    "use_enrolment_code",
    "user_certificate",
    "user_certificate_by_key",
]

_ORG: BindParameter[str] = bindparam("org_id")

# -- organisations -----------------------------------------------------------------------
_ORGANISATION = select(organisations).where(organisations.c.org_id == _ORG)
_ORGANISATION_LOCKED = _ORGANISATION.with_for_update()
_ROOT_KEYS = select(organisations.c.org_id, organisations.c.root_key).where(
    organisations.c.org_id.in_(bindparam("org_ids", expanding=True))
)
_SET_ROOT_KEY = (
    update(organisations)
    .where(organisations.c.org_id == bindparam("b_org_id"))
    .values(root_key=bindparam("b_root_key"))
)
_COUNT_ORGANISATIONS = select(func.count()).select_from(organisations)
_ALL_ORGANISATIONS = select(organisations).order_by(organisations.c.org_id)


async def organisation(conn: AsyncConnection, org_id: str, *, lock: bool = False) -> Record | None:
    """The organisation's row, or None; ``lock`` holds it (``FOR UPDATE``) for the transaction."""
    query = _ORGANISATION_LOCKED if lock else _ORGANISATION
    return (await conn.execute(query, {"org_id": org_id})).first()


async def root_keys(conn: AsyncConnection, org_ids: Iterable[str]) -> dict[str, bytes | None]:
    """Registered root keys (None until the first enrolment) of those of ``org_ids`` that exist."""
    rows = await conn.execute(_ROOT_KEYS, {"org_ids": list(org_ids)})
    return {row.org_id: row.root_key for row in rows}


async def set_root_key(conn: AsyncConnection, org_id: str, root_key: bytes) -> None:
    await conn.execute(_SET_ROOT_KEY, {"b_org_id": org_id, "b_root_key": root_key})


async def insert_organisation(
    conn: AsyncConnection, org_id: str, name: str, kind: str, can_coordinate: bool, now: int
) -> None:
    """Insert an organisation without a root key; a duplicate id raises ``IntegrityError``."""
    await conn.execute(
        insert(organisations),
        {
            "org_id": org_id,
            "name": name,
            "kind": kind,
            "root_key": None,
            "can_coordinate": can_coordinate,
            "created_at": now,
        },
    )


async def count_organisations(conn: AsyncConnection) -> int:
    return (await conn.execute(_COUNT_ORGANISATIONS)).scalar_one()


async def all_organisations(conn: AsyncConnection) -> list[Record]:
    """Every organisation's row, by id (for ``opseal-server list-orgs``)."""
    return list((await conn.execute(_ALL_ORGANISATIONS)).all())


# -- enrolment codes -----------------------------------------------------------------------
_ENROLMENT_CODE = select(enrolment_codes).where(
    enrolment_codes.c.code_hash == bindparam("code_hash")
)
_USE_ENROLMENT_CODE = (
    update(enrolment_codes)
    .where(enrolment_codes.c.code_hash == bindparam("b_code_hash"))
    .values(used_at=bindparam("b_now"))
)


async def enrolment_code(conn: AsyncConnection, code_hash: bytes) -> Record | None:
    return (await conn.execute(_ENROLMENT_CODE, {"code_hash": code_hash})).first()


async def use_enrolment_code(conn: AsyncConnection, code_hash: bytes, now: int) -> None:
    await conn.execute(_USE_ENROLMENT_CODE, {"b_code_hash": code_hash, "b_now": now})


async def insert_enrolment_code(
    conn: AsyncConnection, code_hash: bytes, org_id: str, expires_at: int, now: int
) -> None:
    await conn.execute(
        insert(enrolment_codes),
        {
            "code_hash": code_hash,
            "org_id": org_id,
            "expires_at": expires_at,
            "used_at": None,
            "created_at": now,
        },
    )


# -- users -------------------------------------------------------------------------------
_USER_CERTIFICATE = select(users.c.certificate).where(
    users.c.org_id == _ORG, users.c.user_id == bindparam("user_id")
)
_USER_CERTIFICATE_BY_KEY = select(users.c.certificate).where(
    users.c.org_id == _ORG, users.c.identity_key_id == bindparam("key_id")
)
_CERTIFIED_USER_KEY = select(user_certificates.c.certificate).where(
    user_certificates.c.org_id == _ORG, user_certificates.c.identity_key_id == bindparam("key_id")
)
_REINSTATE_USER = (
    update(users)
    .where(users.c.org_id == bindparam("b_org_id"), users.c.user_id == bindparam("b_user_id"))
    .values(revoked_at=None)
)
_UPDATE_USER_CERTIFICATE = (
    update(users)
    .where(users.c.org_id == bindparam("b_org_id"), users.c.user_id == bindparam("b_user_id"))
    .values(
        certificate=bindparam("b_certificate"),
        identity_key_id=bindparam("b_key_id"),
        expires_at=bindparam("b_expires_at"),
    )
)
_REVOKE_USERS_WITH_KEY = (
    update(users)
    .where(
        users.c.org_id == bindparam("b_org_id"), users.c.identity_key_id == bindparam("b_key_id")
    )
    .values(revoked_at=bindparam("b_now"))
)


async def user_certificate(conn: AsyncConnection, org_id: str, user_id: str) -> bytes | None:
    """The stored certificate of a registered user, or None."""
    row = (await conn.execute(_USER_CERTIFICATE, {"org_id": org_id, "user_id": user_id})).first()
    return row[0] if row is not None else None


async def user_certificate_by_key(
    conn: AsyncConnection, org_id: str, key_id: bytes
) -> bytes | None:
    """The certificate of the organisation's user whose identity key is ``key_id``, or None."""
    row = (
        await conn.execute(_USER_CERTIFICATE_BY_KEY, {"org_id": org_id, "key_id": key_id})
    ).first()
    return row[0] if row is not None else None


async def certified_user_key(conn: AsyncConnection, org_id: str, key_id: bytes) -> bytes | None:
    """The certificate, current or since renewed, that certified ``key_id`` as the identity
    key of one of the organisation's users, or None."""
    row = (await conn.execute(_CERTIFIED_USER_KEY, {"org_id": org_id, "key_id": key_id})).first()
    return row[0] if row is not None else None


async def insert_user(
    conn: AsyncConnection,
    org_id: str,
    user_id: str,
    *,
    kind: str,
    name: str,
    identity_key_id: bytes,
    certificate: bytes,
    expires_at: int,
    now: int,
) -> None:
    """Insert a user; an existing (org, user) raises ``IntegrityError``."""
    await conn.execute(
        insert(users),
        {
            "org_id": org_id,
            "user_id": user_id,
            "kind": kind,
            "name": name,
            "identity_key_id": identity_key_id,
            "certificate": certificate,
            "expires_at": expires_at,
            "revoked_at": None,
            "created_at": now,
        },
    )
    await _remember_certificate(conn, org_id, user_id, identity_key_id, certificate, now)


async def _remember_certificate(
    conn: AsyncConnection, org_id: str, user_id: str, key_id: bytes, certificate: bytes, now: int
) -> None:
    """Keep the certificate of each identity key ever certified (the first one per key)."""
    if await certified_user_key(conn, org_id, key_id) is not None:
        return
    await conn.execute(
        insert(user_certificates),
        {
            "org_id": org_id,
            "identity_key_id": key_id,
            "user_id": user_id,
            "certificate": certificate,
            "created_at": now,
        },
    )


async def update_user_certificate(
    conn: AsyncConnection,
    org_id: str,
    user_id: str,
    *,
    certificate: bytes,
    identity_key_id: bytes,
    expires_at: int,
    now: int = 0,
) -> None:
    """Replace a user's certificate (a renewal) and the key and expiry it carries; the
    replaced certificate stays in the history (``now``: when the renewal was registered)."""
    await conn.execute(
        _UPDATE_USER_CERTIFICATE,
        {
            "b_org_id": org_id,
            "b_user_id": user_id,
            "b_certificate": certificate,
            "b_key_id": identity_key_id,
            "b_expires_at": expires_at,
        },
    )
    await _remember_certificate(conn, org_id, user_id, identity_key_id, certificate, now)


async def reinstate_user(conn: AsyncConnection, org_id: str, user_id: str) -> None:
    """Clear a user's revocation mark (re-certified with a key that is not revoked)."""
    await conn.execute(_REINSTATE_USER, {"b_org_id": org_id, "b_user_id": user_id})


async def revoke_users_with_key(
    conn: AsyncConnection, org_id: str, key_id: bytes, now: int
) -> None:
    """Mark revoked the organisation's users whose identity key is ``key_id``."""
    await conn.execute(
        _REVOKE_USERS_WITH_KEY, {"b_org_id": org_id, "b_key_id": key_id, "b_now": now}
    )


# -- devices -----------------------------------------------------------------------------
_DEVICE: BindParameter[str] = bindparam("device_id")
_DEVICE_EXISTS = select(devices.c.org_id).where(devices.c.device_id == _DEVICE)
_DEVICE_BY_KEY = select(devices.c.device_id, devices.c.certificate).where(
    devices.c.org_id == _ORG, devices.c.key_id == bindparam("key_id")
)
_DEVICES_OF_USERS_WITH_KEY = select(devices.c.device_id).where(
    devices.c.org_id == _ORG,
    devices.c.user_id.in_(
        select(users.c.user_id).where(
            users.c.org_id == _ORG, users.c.identity_key_id == bindparam("key_id")
        )
    ),
)
_DEVICE_IDS_OF_USER = select(devices.c.device_id, devices.c.certificate).where(
    devices.c.org_id == _ORG, devices.c.user_id == bindparam("user_id")
)
_DEVICE_WITH_USER = (
    select(devices, users.c.certificate.label("user_certificate"))
    .join(users, (users.c.org_id == devices.c.org_id) & (users.c.user_id == devices.c.user_id))
    .where(devices.c.device_id == _DEVICE)
)
_DEVICE_SIGNING_KEY = select(devices.c.signing_key).where(devices.c.device_id == _DEVICE)
_DEVICE_ORG = select(devices.c.org_id).where(devices.c.device_id == _DEVICE)
_REVOKE_DEVICES = (
    update(devices)
    .where(devices.c.device_id.in_(bindparam("b_device_ids", expanding=True)))
    .values(revoked_at=bindparam("b_now"))
)
_DELETE_SESSIONS_OF = delete(sessions).where(
    sessions.c.device_id.in_(bindparam("device_ids", expanding=True))
)


async def device_exists(conn: AsyncConnection, device_id: str) -> bool:
    return (await conn.execute(_DEVICE_EXISTS, {"device_id": device_id})).first() is not None


async def insert_device(
    conn: AsyncConnection,
    device_id: str,
    *,
    org_id: str,
    user_id: str,
    signing_key: bytes,
    key_id: bytes,
    certificate: bytes,
    expires_at: int,
    now: int,
) -> None:
    """Insert a device of a registered user; an existing id raises ``IntegrityError``."""
    await conn.execute(
        insert(devices),
        {
            "device_id": device_id,
            "org_id": org_id,
            "user_id": user_id,
            "signing_key": signing_key,
            "key_id": key_id,
            "certificate": certificate,
            "expires_at": expires_at,
            "revoked_at": None,
            "created_at": now,
        },
    )


async def device_by_key(conn: AsyncConnection, org_id: str, key_id: bytes) -> Record | None:
    """``(device_id, certificate)`` of the organisation's device whose key is ``key_id``."""
    return (await conn.execute(_DEVICE_BY_KEY, {"org_id": org_id, "key_id": key_id})).first()


async def devices_of_users_with_key(conn: AsyncConnection, org_id: str, key_id: bytes) -> list[str]:
    """Device ids of the organisation's users whose identity key is ``key_id``."""
    rows = await conn.execute(_DEVICES_OF_USERS_WITH_KEY, {"org_id": org_id, "key_id": key_id})
    return [row[0] for row in rows]


async def device_ids_of_user(
    conn: AsyncConnection, org_id: str, user_id: str
) -> list[tuple[str, bytes]]:
    """``(device_id, certificate)`` of every device of one user."""
    rows = await conn.execute(_DEVICE_IDS_OF_USER, {"org_id": org_id, "user_id": user_id})
    return [(row[0], row[1]) for row in rows]


async def revoke_devices(conn: AsyncConnection, device_ids: list[str], now: int) -> None:
    """Mark the devices revoked and delete their sessions."""
    await conn.execute(_REVOKE_DEVICES, {"b_device_ids": device_ids, "b_now": now})
    await conn.execute(_DELETE_SESSIONS_OF, {"device_ids": device_ids})


async def device_with_user(conn: AsyncConnection, device_id: str) -> Record | None:
    """The device's row with its user's certificate as ``user_certificate``, or None."""
    return (await conn.execute(_DEVICE_WITH_USER, {"device_id": device_id})).first()


async def device_signing_key(conn: AsyncConnection, device_id: str) -> bytes:
    """The registered device's public signing key (it must exist)."""
    return bytes((await conn.execute(_DEVICE_SIGNING_KEY, {"device_id": device_id})).one()[0])


async def device_org(conn: AsyncConnection, device_id: str) -> str | None:
    return (await conn.execute(_DEVICE_ORG, {"device_id": device_id})).scalar_one_or_none()


# -- revocations ---------------------------------------------------------------------------
_REVOKED_KEY_IDS = select(revocations.c.revoked_key_id)
_REVOKED_KEY_IDS_OF = _REVOKED_KEY_IDS.where(revocations.c.org_id == _ORG)
_REVOCATIONS_AFTER = (
    select(revocations.c.id, revocations.c.org_id, revocations.c.statement)
    .where(revocations.c.id > bindparam("after"))
    .order_by(revocations.c.id)
    .limit(bindparam("limit"))
)


async def revocations_after(conn: AsyncConnection, after: int, limit: int) -> list[Record]:
    """``(id, org_id, statement)`` of the revocations recorded after ``after``, oldest first."""
    return list(await conn.execute(_REVOCATIONS_AFTER, {"after": after, "limit": limit}))


async def revoked_key_ids(conn: AsyncConnection, org_id: str | None = None) -> set[bytes]:
    """Every revoked key id, or those of one organisation."""
    if org_id is None:
        rows = await conn.execute(_REVOKED_KEY_IDS)
    else:
        rows = await conn.execute(_REVOKED_KEY_IDS_OF, {"org_id": org_id})
    return {row[0] for row in rows}


async def insert_revocation(
    conn: AsyncConnection, org_id: str, revoked_key_id: bytes, statement: bytes, now: int
) -> None:
    await conn.execute(
        insert(revocations),
        {
            "org_id": org_id,
            "revoked_key_id": revoked_key_id,
            "statement": statement,
            "created_at": now,
        },
    )


# -- challenges and sessions ---------------------------------------------------------------
_DELETE_EXPIRED_CHALLENGES = delete(challenges).where(challenges.c.expires_at <= bindparam("now"))
_TAKE_CHALLENGE = (
    delete(challenges)
    .where(challenges.c.challenge == bindparam("challenge"), challenges.c.device_id == _DEVICE)
    .returning(challenges.c.expires_at)
)
_DELETE_SESSION = delete(sessions).where(sessions.c.token_hash == bindparam("token_hash"))
_SESSION_PRINCIPALS = (
    select(
        sessions.c.token_hash,
        sessions.c.expires_at,
        devices.c.device_id,
        devices.c.org_id,
        devices.c.user_id,
        devices.c.revoked_at,
        users.c.kind,
        users.c.revoked_at.label("user_revoked_at"),
    )
    .join(devices, devices.c.device_id == sessions.c.device_id)
    .join(users, (users.c.org_id == devices.c.org_id) & (users.c.user_id == devices.c.user_id))
    .where(sessions.c.token_hash.in_(bindparam("token_hashes", expanding=True)))
)


async def delete_expired_challenges(conn: AsyncConnection, now: int) -> None:
    await conn.execute(_DELETE_EXPIRED_CHALLENGES, {"now": now})


async def insert_challenge(
    conn: AsyncConnection, challenge: bytes, device_id: str, expires_at: int
) -> None:
    await conn.execute(
        insert(challenges),
        {"challenge": challenge, "device_id": device_id, "expires_at": expires_at},
    )


async def take_challenge(conn: AsyncConnection, challenge: bytes, device_id: str) -> int | None:
    """Delete the challenge issued to ``device_id`` and return its expiry; None if there is none."""
    row = (
        await conn.execute(_TAKE_CHALLENGE, {"challenge": challenge, "device_id": device_id})
    ).first()
    return row[0] if row is not None else None


async def insert_session(
    conn: AsyncConnection, token_hash: bytes, device_id: str, expires_at: int, now: int
) -> None:
    await conn.execute(
        insert(sessions),
        {
            "token_hash": token_hash,
            "device_id": device_id,
            "expires_at": expires_at,
            "created_at": now,
        },
    )


async def delete_session(conn: AsyncConnection, token_hash: bytes) -> None:
    await conn.execute(_DELETE_SESSION, {"token_hash": token_hash})


async def session_principals(
    conn: AsyncConnection, token_hashes: Sequence[bytes]
) -> dict[bytes, Record]:
    """Each session's expiry with its device and user (ids, kind, revocation times), by token
    hash (absent: no such session)."""
    rows = await conn.execute(_SESSION_PRINCIPALS, {"token_hashes": list(token_hashes)})
    return {bytes(row.token_hash): row for row in rows}
