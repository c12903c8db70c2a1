"""Instance, enrolment, login and identity bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .base import Request, Response
from .scalars import B64, B64_IN, ID, TIME

__all__ = [
    "Certificate",
    "Challenge",
    "ChallengeRequest",
    "Device",
    "DeviceRegistered",
    "EnrolRequest",
    "Enrolled",
    "EnrolmentCodeIssued",
    "EnrolmentCodeRequest",
    "Instance",
    "LoggedOut",
    "LoginRequest",
    "Organisation",
    "Revocation",
    "RevocationEntry",
    "Revocations",
    "RevocationsQuery",
    "Revoked",
    "Session",
    "UserRegistered",
    "WhoAmI",
]


class Instance(Response, frozen=True):
    """The instance's id, name and audit-log key."""

    instance_id: ID
    name: Annotated[str, Meta(description="instance name")]
    log_key: Annotated[B64, Meta(description="Ed25519 public key that signs audit checkpoints")]
    log_key_fingerprint: Annotated[str, Meta(description="six groups of five digits")]


class EnrolRequest(Request, frozen=True):
    """A one-time enrolment code with the certificates it registers."""

    code: Annotated[
        str, Meta(min_length=1, max_length=64, description="the one-time enrolment code")
    ]
    user_certificate: Annotated[B64_IN, Meta(description="user certificate signed by the root key")]
    device_certificate: Annotated[B64_IN, Meta(description="device certificate signed by the user")]
    root_key: Annotated[
        B64_IN | None, Meta(description="Ed25519 root public key (first enrolment)")
    ] = None


class Enrolled(Response, frozen=True):
    """The identities an enrolment registered."""

    device_id: ID
    org_id: ID
    user_id: ID


class ChallengeRequest(Request, frozen=True):
    """The device asking for a login challenge."""

    device_id: ID


class Challenge(Response, frozen=True):
    """A one-time login challenge."""

    challenge: Annotated[B64, Meta(description="32 random bytes")]
    expires_at: TIME


class LoginRequest(Request, frozen=True):
    """A signed challenge."""

    device_id: ID
    challenge: Annotated[B64_IN, Meta(description="the challenge as issued")]
    signature: Annotated[B64_IN, Meta(description="Ed25519 signature of the login statement")]


class Session(Response, frozen=True):
    """A short-lived bearer token."""

    token: Annotated[B64, Meta(description="bearer token")]
    expires_at: TIME


class LoggedOut(Response, frozen=True):
    """The session has ended."""

    logged_out: Literal[True]


class WhoAmI(Response, frozen=True):
    """The authenticated device."""

    device_id: ID
    org_id: ID
    user_id: ID
    user_kind: Annotated[str, Meta(description="person or service")]


class Organisation(Response, frozen=True):
    """An organisation and its root key."""

    org_id: ID
    name: str
    kind: Annotated[str, Meta(description="e.g. customs-administration")]
    root_key: Annotated[
        B64 | None, Meta(description="Ed25519 root public key; null before enrolment")
    ]
    fingerprint: Annotated[str | None, Meta(description="root key fingerprint")]


class Certificate(Request, frozen=True):
    """A signed user or device certificate to register."""

    certificate: Annotated[B64_IN, Meta(description="the signed certificate encoding")]


class UserRegistered(Response, frozen=True):
    """The registered user."""

    user_id: ID


class DeviceRegistered(Response, frozen=True):
    """The registered device."""

    device_id: ID


class Revocation(Request, frozen=True):
    """A signed revocation of a user or device key."""

    statement: Annotated[B64_IN, Meta(description="the signed revocation statement")]


class EnrolmentCodeRequest(Request, frozen=True):
    """A one-time enrolment code made by the focal point, granted by its organisation's root."""

    code_hash: Annotated[
        B64_IN, Meta(description="SHA-256 of the code (the code stays with the focal point)")
    ]
    expires_at: Annotated[int, Meta(ge=0, description="Unix time; at most 30 days ahead")]
    signature: Annotated[
        B64_IN,
        Meta(
            description="the organisation root's Ed25519 signature of the enrolment-code statement"
        ),
    ]


class EnrolmentCodeIssued(Response, frozen=True):
    """The code is stored and valid until ``expires_at``."""

    org_id: ID
    expires_at: TIME


class Revoked(Response, frozen=True):
    """The revoked subject."""

    revoked: Annotated[str, Meta(description="the revoked subject")]


MAX_REVOCATION_ID = 2**31 - 1
"""Revocation ids are 32-bit row ids on every backend."""


class RevocationsQuery(Request, frozen=True):
    """Which revocations to list: those recorded after the cursor ``after``."""

    after: Annotated[
        int,
        Meta(ge=0, le=MAX_REVOCATION_ID, description="the last page's cursor (0: from the start)"),
    ] = 0
    limit: Annotated[int, Meta(ge=1, le=1000, description="at most this many")] = 1000


class RevocationEntry(Response, frozen=True):
    """One recorded revocation with the certificates that prove it."""

    id: Annotated[
        int, Meta(ge=1, le=MAX_REVOCATION_ID, description="its position; the next page's cursor")
    ]
    org_id: ID
    statement: Annotated[B64, Meta(description="the signed revocation statement")]
    subject_certificate: Annotated[B64, Meta(description="the revoked key's own certificate")]
    issuer_certificate: (
        Annotated[B64, Meta(description="the issuing user's certificate (a user's own device)")]
        | None
    )


class Revocations(Response, frozen=True):
    """A page of revocations, oldest first, and the cursor to continue from."""

    revocations: list[RevocationEntry]
    cursor: Annotated[int, Meta(ge=0, le=MAX_REVOCATION_ID)]


class Device(Response, frozen=True):
    """A device's certificates and revocation state."""

    device_id: ID
    org_id: ID
    user_id: ID
    device_certificate: Annotated[B64, Meta(description="signed device certificate")]
    user_certificate: Annotated[B64, Meta(description="signed user certificate")]
    revoked: bool
