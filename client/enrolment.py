"""Enrolment where keys never leave the device, and the audit log key taken out of band
(design §3, §12).

1. On the user's device, :func:`request_enrolment` makes the user's identity key and the
   device's keys, certifies the device with the identity key, keeps all private keys in the
   profile (sealed with the passphrase, as ``enrol-request``) and returns a signed
   :class:`~opseal.crypto.certs.EnrolmentRequest` to hand to the focal point (a file).
2. On the focal point's device, :func:`certify_request` checks the request's signature and
   the fingerprint the user reads out, certifies the identity key with the organisation root
   and registers the user and the device on the server by their chain alone.
3. Back on the device, :func:`complete_enrolment` takes the user certificate, checks that it
   certifies this device's own identity key, and finishes the profile.

The instance's audit log key is compared with one given out of band (:func:`check_log_key`)
before anything is saved; :func:`checkpoint_age_problem` says when the newest checkpoint is
too old to trust as current.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict
from typing import Any

from opseal.crypto.certs import Certificate, EnrolmentRequest
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import DeviceIdentity
from opseal.crypto.keys import HpkePrivateKey, KdfParams, SigningKey, VerifyKey
from opseal.crypto.statements import enrolment_code_message

from .admission import YEAR, certify_user_key
from .api import ApiClient
from .errors import ClientError
from .profile import Profile, ProfileInfo, check_passphrase

__all__ = [
    "CHECKPOINT_MAX_AGE",
    "REQUEST_HEADER",
    "RESPONSE_HEADER",
    "certify_request",
    "check_log_key",
    "checkpoint_age_problem",
    "complete_enrolment",
    "encode_request",
    "encode_response",
    "issue_code",
    "pending_info",
    "read_request",
    "request_enrolment",
]

CHECKPOINT_MAX_AGE = 3600
"""A checkpoint older than this (seconds) is reported: a logged-in client's own login grows
the log, so an honest server signs a fresh one on demand."""
REQUEST_HEADER = "OPSEAL ENROLMENT REQUEST v1"
RESPONSE_HEADER = "OPSEAL USER CERTIFICATE v1"
_PENDING = "enrol-request"
CODE_TTL = 7 * 86400


async def issue_code(
    api: ApiClient, instance_id: str, org_id: str, root: SigningKey, now: int, ttl: int = CODE_TTL
) -> tuple[str, int]:
    """As a focal point: make a one-time enrolment code for the organisation, have the server
    store its hash under a grant signed by ``root``; returns the code and its expiry."""
    code = "-".join(secrets.token_hex(4) for _ in range(4))
    code_hash = hashlib.sha256(code.encode()).digest()
    expires_at = now + ttl
    signature = root.sign(enrolment_code_message(instance_id, org_id, code_hash, expires_at))
    answer = await api.issue_enrolment_code(org_id, code_hash, expires_at, signature)
    return code, answer.expires_at


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def check_log_key(served_key: str, pinned: str) -> None:
    """Refuse the instance's log key (base64url) unless it is the one given out of band —
    as a fingerprint (six groups of five digits) or as the key itself."""
    key = VerifyKey(b64d(served_key))
    if pinned.strip() == served_key or _digits(pinned) == _digits(key.fingerprint):
        return
    raise ClientError(
        f"the instance's audit log key has fingerprint {key.fingerprint}, not the one given "
        "with --log-key: nothing was saved; check the fingerprint with the instance admin"
    )


def checkpoint_age_problem(timestamp: int, now: int, max_age: int) -> str | None:
    """Why a checkpoint of ``timestamp`` is too old at ``now``, or None."""
    if now - timestamp <= max_age:
        return None
    return (
        f"the newest audit checkpoint is {now - timestamp} s old (more than {max_age} s): "
        "the server may be hiding newer entries"
    )


# -- 1. on the device ---------------------------------------------------------------------
def request_enrolment(
    profile: Profile,
    *,
    info: ProfileInfo,
    passphrase: str,
    name: str = "",
    params: KdfParams | None = None,
) -> EnrolmentRequest:
    """Make this device's keys and a signed enrolment request; the private keys stay in the
    profile, sealed with ``passphrase``."""
    check_passphrase(passphrase, "device")
    identity, signing, hpke = (
        SigningKey.generate(),
        SigningKey.generate(),
        HpkePrivateKey.generate(),
    )
    request = EnrolmentRequest.create(
        identity, organisation_id=info.org_id, user_id=info.user_id, user_kind=info.user_kind,
        name=name or info.user_id, device_id=info.device_id, device_key=signing.verify_key,
        hpke_key=hpke.public_key, now=int(time.time()), lifetime=YEAR,
    )  # fmt: skip
    payload = {
        "identity": b64e(identity.private_bytes()),
        "signing": b64e(signing.private_bytes()),
        "hpke": b64e(hpke.private_bytes()),
        "request": b64e(request.to_bytes()),
        "info": json.dumps(asdict(info)),
    }
    profile.save_key(_PENDING, payload, passphrase, params)
    return request


def encode_request(request: EnrolmentRequest) -> str:
    """The request as a small text file."""
    return f"{REQUEST_HEADER}\n{b64e(request.to_bytes())}\n"


def read_request(text: str) -> EnrolmentRequest:
    """Parse and verify a request file; a damaged or altered one is refused, saying so."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != 2 or lines[0] != REQUEST_HEADER:
        raise ClientError(f"not an enrolment request: expected '{REQUEST_HEADER}' and one line")
    try:
        request = EnrolmentRequest.from_bytes(b64d(lines[1], field="request"))
        request.verify()
    except CryptoError as exc:
        raise ClientError(f"enrolment request refused: {exc}") from exc
    return request


# -- 2. on the focal point's device -------------------------------------------------------
async def certify_request(
    api: ApiClient, org_id: str, root: SigningKey, request: EnrolmentRequest, fingerprint: str
) -> Certificate:
    """Certify a verified request whose fingerprint matches the one read out by the user, and
    register the user and the device. Returns the user certificate to send back."""
    if _digits(fingerprint) != _digits(request.fingerprint):
        raise ClientError(
            "the fingerprint read out does not match the request's: do not certify it; "
            "ask the user to read it again, or to make a new request"
        )
    if request.organisation_id != org_id:
        raise ClientError(
            f"the request is for organisation {request.organisation_id!r}, not {org_id!r}"
        )
    cert = certify_user_key(
        root, request.organisation_id, request.user_id, request.user_kind, request.name,
        request.identity_key, int(time.time()),
    )  # fmt: skip
    await api.register_user(org_id, cert.to_bytes())
    await api.register_device(org_id, request.device_cert.to_bytes())
    return cert


def encode_response(cert: Certificate) -> str:
    return f"{RESPONSE_HEADER}\n{b64e(cert.to_bytes())}\n"


# -- 3. back on the device ----------------------------------------------------------------
def _read_response(text: str) -> Certificate:
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) != 2 or lines[0] != RESPONSE_HEADER:
        raise ClientError(f"not a user certificate: expected '{RESPONSE_HEADER}' and one line")
    try:
        return Certificate.from_bytes(b64d(lines[1], field="certificate"))
    except CryptoError as exc:
        raise ClientError(f"user certificate refused: {exc}") from exc


def pending_info(profile: Profile, passphrase: str) -> ProfileInfo:
    """The profile details given when the request was made."""
    data = profile.load_key(_PENDING, passphrase)
    return ProfileInfo(**json.loads(data["info"]))


async def complete_enrolment(
    profile: Profile,
    response: str,
    passphrase: str,
    *,
    log_key: str = "",
    params: KdfParams | None = None,
    ssl_context: Any = None,
) -> ProfileInfo:
    """Finish the enrolment with the focal point's answer: check it certifies this device's
    own identity key, pin the instance's log key, and save the profile."""
    # Argon2 and the key files run off the event loop.
    data = await asyncio.to_thread(profile.load_key, _PENDING, passphrase)
    info = await asyncio.to_thread(pending_info, profile, passphrase)
    request = EnrolmentRequest.from_bytes(b64d(data["request"]))
    cert = _read_response(response)
    if cert.signing_key != request.identity_key or (cert.organisation_id, cert.user_id) != (
        request.organisation_id, request.user_id,
    ):  # fmt: skip
        raise ClientError("the certificate is not for this device's request: nothing was saved")
    identity = DeviceIdentity(
        cert,
        request.device_cert,
        SigningKey(b64d(data["signing"])),
        HpkePrivateKey(b64d(data["hpke"])),
    )
    async with ApiClient(info.server, ssl_context=ssl_context) as api:
        described = await api.instance()
        if log_key:
            check_log_key(described.log_key, log_key)
        await api.login(described.instance_id, info.device_id, identity.signing_key)
        org = await api.organisation(info.org_id)
        await api.logout()
    root = VerifyKey(b64d(org.root_key)) if org.root_key else None
    try:
        if root is None:
            raise CryptoError("the organisation has no registered root key")
        cert.check_signed_by(root)
    except CryptoError as exc:
        raise ClientError(
            f"the certificate does not chain to the organisation root: {exc}"
        ) from exc
    info.instance_id, info.log_key = described.instance_id, described.log_key
    await asyncio.to_thread(_save_enrolled, profile, info, data, cert, identity, passphrase, params)
    return info


def _save_enrolled(
    profile: Profile,
    info: ProfileInfo,
    data: dict[str, str],
    cert: Certificate,
    identity: DeviceIdentity,
    passphrase: str,
    params: KdfParams | None,
) -> None:
    profile.save_info(info)
    profile.save_user(SigningKey(b64d(data["identity"])), cert, passphrase, params)
    profile.save_device(identity, os.urandom(32), passphrase, params)
    (profile.path / f"{_PENDING}.key").unlink()
