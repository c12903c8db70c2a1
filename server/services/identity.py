"""Identities: enrolment, certificates, revocations, login and token authentication.

The server verifies every certificate chain to the organisation's registered root key, but
trust in that root key comes from charters and out-of-band fingerprints, never from here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.certs import (
    Certificate,
    Revocation,
    verify_device_chain,
    verify_user_certificate,
)
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey
from opseal.crypto.statements import login_message

from ..errors import BadRequest, Conflict, Forbidden, InvalidSignature, NotFound, Unauthorized
from ..storage import identity as store
from .base import Context, Principal, Tx
from .instance import hash_code

__all__ = [
    "MAX_CACHED_SESSIONS",
    "SESSION_CACHE_SECONDS",
    "DeviceRecord",
    "authenticate",
    "authenticate_many",
    "challenge",
    "device_record",
    "enrol",
    "forget_sessions",
    "login",
    "logout",
    "organisation",
    "register_device",
    "register_user",
    "revocations",
    "revoke",
]


SESSION_CACHE_SECONDS = 1.0
"""How long an authenticated token is trusted without reading its session again. A logout or
revocation through this process drops the cache at once; one through another node (or one
whose transaction commits while a request re-reads the session) takes effect here within
this time (design §13)."""
MAX_CACHED_SESSIONS = 10_000


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    org_id: str
    user_id: str
    signing_key: VerifyKey
    device_cert: bytes
    user_cert: bytes
    revoked: bool


def _cert(raw: bytes, what: str) -> Certificate:
    try:
        return Certificate.from_bytes(raw)
    except CryptoError as exc:
        raise BadRequest(f"{what}: {exc}") from exc


async def _root_key(conn: AsyncConnection, org_id: str) -> VerifyKey | None:
    row = await store.organisation(conn, org_id)
    if row is None:
        raise NotFound(f"organisation {org_id!r} does not exist")
    return VerifyKey(row.root_key) if row.root_key is not None else None


async def enrol(
    ctx: Context, code: str, root_key: bytes | None, user_cert: bytes, device_cert: bytes
) -> Principal:
    """Redeem a one-time code: register the organisation's root key (first time), a user and
    a device. All or nothing: a refused enrolment leaves the code unused."""
    user, device = _cert(user_cert, "user_certificate"), _cert(device_cert, "device_certificate")
    async with ctx.transaction() as tx:
        row = await store.enrolment_code(tx.conn, hash_code(code))
        if row is None or row.used_at is not None or row.expires_at <= tx.now:
            raise Unauthorized("enrolment code is unknown, used or expired")
        await store.use_enrolment_code(tx.conn, row.code_hash, tx.now)
        root = await _root_key(tx.conn, row.org_id)
        if root is None:
            if root_key is None:
                raise BadRequest("root_key: the organisation's first enrolment must set it")
            root = VerifyKey(root_key)
            await store.set_root_key(tx.conn, row.org_id, root.raw)
            await tx.audit(
                event="root-key-registered", org=row.org_id, fingerprint=root.fingerprint
            )
        elif root_key is not None and root_key != root.raw:
            raise Conflict("root_key: the organisation already has another root key")
        await _store_user(tx, user, root, row.org_id)
        await _store_device(tx, device, user, root, row.org_id)
        await tx.audit(event="enrolled", org=row.org_id, user=user.user_id, device=device.device_id)
    return Principal(device.device_id, row.org_id, user.user_id, user.user_kind)


async def _store_user(tx, user: Certificate, root: VerifyKey, org_id: str) -> None:  # type: ignore[no-untyped-def]
    if user.organisation_id != org_id:  # a mistyped --org: say which one the code is for
        raise BadRequest(
            f"organisation: this enrolment code was issued for {org_id!r}, not "
            f"{user.organisation_id!r}",
            field="organisation_id",
            expected=org_id,
        )
    try:
        verify_user_certificate(
            user,
            root,
            organisation_id=org_id,
            now=tx.now,
            revoked=await store.revoked_key_ids(tx.conn, org_id),
        )
    except CryptoError as exc:
        raise InvalidSignature(f"user_certificate: {exc}") from exc
    existing = await store.user_certificate(tx.conn, org_id, user.user_id)
    if existing is not None:
        if existing != user.to_bytes():
            current = Certificate.from_bytes(existing)
            # a renewal is newer and certifies a key never certified before: an older
            # certificate (or a key of the user's history) cannot roll back a renewal or
            # reinstate a revoked user, so only the root holder can do either
            if user.issued_at < current.issued_at:
                raise Conflict(
                    f"certificate: issued at {user.issued_at}, before the current "
                    f"certificate of {user.user_id!r} (issued at {current.issued_at})"
                )
            if await store.certified_user_key(tx.conn, org_id, user.signing_key.key_id):
                raise Conflict(f"certificate: the key was already certified in {org_id!r}")
            await store.update_user_certificate(
                tx.conn,
                org_id,
                user.user_id,
                certificate=user.to_bytes(),
                identity_key_id=user.signing_key.key_id,
                expires_at=user.expires_at,
                now=tx.now,
            )
            # the new key is not revoked (checked above): a revoked user is certified again
            await store.reinstate_user(tx.conn, org_id, user.user_id)
            await tx.audit(event="user-certificate-renewed", org=org_id, user=user.user_id)
        return
    await store.insert_user(
        tx.conn,
        org_id,
        user.user_id,
        kind=user.user_kind,
        name=user.name,
        identity_key_id=user.signing_key.key_id,
        certificate=user.to_bytes(),
        expires_at=user.expires_at,
        now=tx.now,
    )
    await tx.audit(event="user-registered", org=org_id, user=user.user_id, kind=user.user_kind)


async def _store_device(
    tx: Tx,
    device: Certificate,
    user: Certificate,
    root: VerifyKey,
    org_id: str,
) -> None:
    try:
        verify_device_chain(
            device,
            user,
            root,
            organisation_id=org_id,
            now=tx.now,
            revoked=await store.revoked_key_ids(tx.conn, org_id),
        )
    except CryptoError as exc:
        raise InvalidSignature(f"device_certificate: {exc}") from exc
    if await store.device_exists(tx.conn, device.device_id):
        raise Conflict(f"device {device.device_id!r} is already registered")
    await store.insert_device(
        tx.conn,
        device.device_id,
        org_id=org_id,
        user_id=user.user_id,
        signing_key=device.signing_key.raw,
        key_id=device.signing_key.key_id,
        certificate=device.to_bytes(),
        expires_at=device.expires_at,
        now=tx.now,
    )
    await tx.audit(
        event="device-registered", org=org_id, user=user.user_id, device=device.device_id
    )


def _same_org(principal: Principal, org_id: str) -> None:
    if principal.org_id != org_id:
        raise Forbidden(f"only devices of {org_id!r} manage its users and devices")


async def register_user(ctx: Context, principal: Principal, org_id: str, user_cert: bytes) -> str:
    """A device of the organisation uploads a user certificate signed by the root."""
    _same_org(principal, org_id)
    user = _cert(user_cert, "certificate")
    async with ctx.transaction() as tx:
        root = await _root_key(tx.conn, org_id)
        assert root is not None  # an enrolled device implies a root key
        await _store_user(tx, user, root, org_id)
    return user.user_id


async def register_device(
    ctx: Context, principal: Principal, org_id: str, device_cert: bytes
) -> str:
    """A device of the organisation uploads a device certificate for a registered user."""
    _same_org(principal, org_id)
    device = _cert(device_cert, "certificate")
    async with ctx.transaction() as tx:
        root = await _root_key(tx.conn, org_id)
        assert root is not None
        user_cert = await store.user_certificate(tx.conn, org_id, device.user_id)
        if user_cert is None:
            raise NotFound(f"user {device.user_id!r} is not registered in {org_id!r}")
        await _store_device(tx, device, Certificate.from_bytes(user_cert), root, org_id)
    return device.device_id


async def revoke(ctx: Context, principal: Principal, org_id: str, statement: bytes) -> str:
    """Record a signed revocation of a user's identity key or a device key; end its sessions."""
    _same_org(principal, org_id)
    try:
        rev = Revocation.from_bytes(statement)
    except CryptoError as exc:
        raise BadRequest(f"statement: {exc}") from exc
    if rev.organisation_id != org_id:
        raise BadRequest("statement: revocation names another organisation")
    async with ctx.transaction() as tx:
        root = await _root_key(tx.conn, org_id)
        assert root is not None
        issuer_cert = await _user_cert_by_key(tx.conn, org_id, rev.issuer_key_id)
        device = await store.device_by_key(tx.conn, org_id, rev.revoked_key_id)
        subject = (
            Certificate.from_bytes(device.certificate)
            if device is not None
            else await _user_cert_by_key(tx.conn, org_id, rev.revoked_key_id)
        )
        if subject is None:
            raise NotFound("statement: the revoked key belongs to no registered user or device")
        try:
            rev.verify(root, subject, user_cert=issuer_cert)
        except CryptoError as exc:
            raise InvalidSignature(f"statement: {exc}") from exc
        await store.insert_revocation(tx.conn, org_id, rev.revoked_key_id, statement, tx.now)
        await _apply_revocation(tx, org_id, rev.revoked_key_id, device, subject)
        await tx.audit(
            event="revoked",
            org=org_id,
            subject=rev.subject_id,
            key_id=b64e(rev.revoked_key_id),
            by=principal.device_id,
        )
    forget_sessions(ctx)  # after the commit; a read racing it is not cached (generation)
    return rev.subject_id


async def _user_cert_by_key(
    conn: AsyncConnection, org_id: str, key_id: bytes
) -> Certificate | None:
    raw = await store.certified_user_key(conn, org_id, key_id)
    return Certificate.from_bytes(raw) if raw is not None else None


async def _apply_revocation(tx, org_id: str, key_id: bytes, device, subject: Certificate) -> None:  # type: ignore[no-untyped-def]
    """Mark the device, or the user (when the key is its current one) and all its devices,
    revoked; a revoked old key of a renewed user leaves the user in office and revokes the
    devices that key certified."""
    if device is not None:
        revoked_devices = [device.device_id]
    else:
        current = await store.user_certificate(tx.conn, org_id, subject.user_id)
        user_revoked = current is not None and (
            Certificate.from_bytes(current).signing_key.key_id == key_id
        )
        await store.revoke_users_with_key(tx.conn, org_id, key_id, tx.now)
        # a revoked user loses every device, those its earlier keys certified too
        revoked_devices = [
            device_id
            for device_id, cert in await store.device_ids_of_user(tx.conn, org_id, subject.user_id)
            if user_revoked or Certificate.from_bytes(cert).issuer_key_id == key_id
        ]
    if revoked_devices:
        await store.revoke_devices(tx.conn, revoked_devices, tx.now)


async def revocations(ctx: Context, after: int, limit: int) -> dict[str, Any]:
    """Every recorded revocation after the cursor ``after``, each with the certificates a
    client needs to verify it against the organisation's root: the revoked key's own, and the
    issuing user's when a user revoked one of its devices."""
    async with ctx.engine.connect() as conn:
        rows = await store.revocations_after(conn, after, limit)
        items = [await _revocation_item(conn, row) for row in rows]
    return {"revocations": items, "cursor": rows[-1].id if rows else after}


async def _revocation_item(conn: AsyncConnection, row: Any) -> dict[str, Any]:
    rev = Revocation.from_bytes(row.statement)
    device = await store.device_by_key(conn, row.org_id, rev.revoked_key_id)
    subject = (
        device.certificate
        if device is not None
        else await store.certified_user_key(conn, row.org_id, rev.revoked_key_id)
    )
    issuer = await store.certified_user_key(conn, row.org_id, rev.issuer_key_id)
    return {
        "id": row.id,
        "org_id": row.org_id,
        "statement": b64e(row.statement),
        "subject_certificate": b64e(subject) if subject is not None else "",
        "issuer_certificate": b64e(issuer) if issuer is not None else None,
    }


async def device_record(conn: AsyncConnection, device_id: str) -> DeviceRecord:
    row = await store.device_with_user(conn, device_id)
    if row is None:
        raise NotFound(f"device {device_id!r} is not registered")
    return DeviceRecord(
        row.device_id,
        row.org_id,
        row.user_id,
        VerifyKey(row.signing_key),
        row.certificate,
        row.user_certificate,
        row.revoked_at is not None,
    )


async def organisation(ctx: Context, org_id: str) -> dict[str, object]:
    async with ctx.engine.connect() as conn:
        row = await store.organisation(conn, org_id)
    if row is None:
        raise NotFound(f"organisation {org_id!r} does not exist")
    root = VerifyKey(row.root_key) if row.root_key else None
    return {
        "org_id": row.org_id,
        "name": row.name,
        "kind": row.kind,
        "root_key": b64e(root.raw) if root else None,
        "fingerprint": root.fingerprint if root else None,
    }


# -- login -----------------------------------------------------------------------------
async def challenge(ctx: Context, device_id: str) -> tuple[bytes, int]:
    """A one-time challenge for ``device_id`` (issued whether or not the device exists)."""
    value = secrets.token_bytes(32)
    async with ctx.transaction() as tx:
        await store.delete_expired_challenges(tx.conn, tx.now)
        expires = tx.now + ctx.settings.challenge_ttl
        await store.insert_challenge(tx.conn, value, device_id, expires)
    return value, expires


def _token_hash(ctx: Context, token: str) -> bytes:
    return ctx.instance.token_hmac.digest(token.encode())


async def login(
    ctx: Context, device_id: str, challenge_value: bytes, signature: bytes
) -> tuple[str, int]:
    """Exchange a signed challenge for a short-lived bearer token."""
    async with ctx.transaction() as tx:
        challenge_expires = await store.take_challenge(tx.conn, challenge_value, device_id)
        if challenge_expires is None or challenge_expires <= tx.now:
            raise Unauthorized("login challenge is unknown, used or expired")
        try:
            record = await device_record(tx.conn, device_id)
        except NotFound as exc:
            raise Unauthorized("unknown device or bad signature") from exc
        if record.revoked:
            raise Unauthorized("this device has been revoked")
        message = login_message(ctx.instance.instance_id, device_id, challenge_value)
        try:
            record.signing_key.verify(signature, message, what="login")
        except CryptoError as exc:
            raise Unauthorized("unknown device or bad signature") from exc
        token = b64e(secrets.token_bytes(32))
        expires = tx.now + ctx.settings.token_ttl
        await store.insert_session(tx.conn, _token_hash(ctx, token), device_id, expires, tx.now)
        await tx.audit(event="login", org=record.org_id, device=device_id)
    return token, expires


async def logout(ctx: Context, token: str) -> None:
    token_hash = _token_hash(ctx, token)
    async with ctx.transaction() as tx:
        await store.delete_session(tx.conn, token_hash)
    forget_sessions(ctx, token_hash)


def forget_sessions(ctx: Context, token_hash: bytes | None = None) -> None:
    """Drop cached sessions (one, or all) after a logout or revocation committed, and bump the
    generation so an :func:`authenticate` that read the database before it caches nothing."""
    ctx.session_generation += 1
    if token_hash is None:
        ctx.sessions.clear()
    else:
        ctx.sessions.pop(token_hash, None)


async def authenticate(ctx: Context, token: str) -> Principal:
    """The device behind a bearer token; :class:`Unauthorized` if none, expired or revoked."""
    found = (await authenticate_many(ctx, [token]))[token]
    if isinstance(found, Unauthorized):
        raise found
    return found


async def authenticate_many(
    ctx: Context, tokens: Iterable[str]
) -> dict[str, Principal | Unauthorized]:
    """:func:`authenticate` for each of ``tokens``, the sessions not cached read in one query
    (a stream sweep re-checks hundreds at once): each token's device, or its refusal."""
    answers: dict[str, Principal | Unauthorized] = {}
    unread: dict[bytes, str] = {}
    now = time.monotonic()
    for token in tokens:
        try:
            b64d(token, field="token", max_len=64)
        except CryptoError:
            answers[token] = Unauthorized("malformed bearer token")
            continue
        token_hash = _token_hash(ctx, token)
        cached = ctx.sessions.get(token_hash)
        if cached is not None and now - cached[2] < SESSION_CACHE_SECONDS:
            answers[token] = _unexpired(ctx, cached[0], cached[1])
        else:
            unread[token_hash] = token
    if unread:
        generation = ctx.session_generation
        async with ctx.engine.connect() as conn:
            rows = await store.session_principals(conn, list(unread))
        for token_hash, token in unread.items():
            answers[token] = _session(ctx, token_hash, rows.get(token_hash), generation)
    return answers


def _session(
    ctx: Context, token_hash: bytes, row: Any, generation: int
) -> Principal | Unauthorized:
    """The device of a session row just read (cached unless a logout or revocation came
    meanwhile: ``generation`` is the one before the read), or the refusal."""
    if row is None:
        return Unauthorized("unknown or expired token: log in again")
    if row.revoked_at is not None or row.user_revoked_at is not None:
        return Unauthorized("this device has been revoked")
    found = Principal(row.device_id, row.org_id, row.user_id, row.kind)
    if len(ctx.sessions) >= MAX_CACHED_SESSIONS:
        ctx.sessions.clear()
    if ctx.session_generation == generation:  # no logout or revocation meanwhile
        ctx.sessions[token_hash] = (found, row.expires_at, time.monotonic())
    return _unexpired(ctx, found, row.expires_at)


def _unexpired(ctx: Context, found: Principal, expires_at: int) -> Principal | Unauthorized:
    if expires_at <= ctx.now():
        return Unauthorized("unknown or expired token: log in again")
    return found
