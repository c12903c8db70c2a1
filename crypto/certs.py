"""Certificates and revocations: organisation root -> user -> device (design §3).

An organisation's root key has no certificate: it is trusted because an operation charter
lists it (and people compared its fingerprint out of band). The root certifies users (kind
``person`` or ``service``); a user's identity key certifies that user's devices, each with an
Ed25519 signing key and an HPKE key. Revocations are statements signed by the organisation
root (any of its keys) or by a user's identity key (that user's devices).

Every check takes the time it is evaluated at: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from .encoding import Reader, Writer, label, length_prefixed, sha256
from .errors import CertificateError, DecodeError, SignatureError
from .keys import HpkePublicKey, SigningKey, VerifyKey, fingerprint_text

__all__ = [
    "USER_KINDS",
    "Certificate",
    "EnrolmentRequest",
    "Revocation",
    "RevokedKeys",
    "issue_device_certificate",
    "issue_user_certificate",
    "verify_device_chain",
    "verify_user_certificate",
]

USER_KINDS = ("person", "service")
_CERT = label("cert")
_REVOCATION = label("revocation")
_ENROL_REQUEST = label("enrol-request")
_MAX_ID = 128
CertKind = Literal["user", "device"]


def _check_id(value: str, what: str) -> str:
    if not value or len(value.encode()) > _MAX_ID or not value.isprintable():
        raise DecodeError(f"{what} must be 1-{_MAX_ID} printable bytes")
    return value


@dataclass(frozen=True)
class Certificate:
    """A signed statement binding keys to an organisation's user or device.

    ``kind`` is ``user`` (``user_kind`` person/service, no device id, no HPKE key) or
    ``device`` (a device id and an HPKE key; ``user_kind`` repeats the user's kind).
    """

    kind: CertKind
    organisation_id: str
    user_id: str
    device_id: str
    user_kind: str
    name: str
    signing_key: VerifyKey
    hpke_key: HpkePublicKey | None
    issuer_key_id: bytes
    issued_at: int
    expires_at: int
    attributes: dict[str, str] = field(default_factory=dict)
    signature: bytes = b""

    def __post_init__(self) -> None:
        if self.kind not in ("user", "device"):
            raise DecodeError("certificate: kind must be 'user' or 'device'")
        if self.user_kind not in USER_KINDS:
            raise DecodeError(f"certificate: user kind must be one of {', '.join(USER_KINDS)}")
        _check_id(self.organisation_id, "certificate: organisation id")
        _check_id(self.user_id, "certificate: user id")
        if (self.kind == "device") != bool(self.device_id):
            raise DecodeError("certificate: a device id is required on, and only on, devices")
        if (self.kind == "device") != (self.hpke_key is not None):
            raise DecodeError("certificate: an HPKE key is required on, and only on, devices")
        if self.device_id:
            _check_id(self.device_id, "certificate: device id")
        if self.expires_at <= self.issued_at:
            raise DecodeError("certificate: expires_at must be after issued_at")
        if len(self.name.encode()) > 256 or not self.name.isprintable():
            raise DecodeError("certificate: name must be at most 256 printable bytes")

    @property
    def subject_id(self) -> str:
        return self.device_id if self.kind == "device" else self.user_id

    def to_be_signed(self) -> bytes:
        return (
            Writer(_CERT)
            .text(self.kind)
            .text(self.organisation_id)
            .text(self.user_id)
            .text(self.device_id)
            .text(self.user_kind)
            .text(self.name)
            .blob(self.signing_key.raw)
            .optional_bytes(self.hpke_key.raw if self.hpke_key else None)
            .blob(self.issuer_key_id)
            .u64(self.issued_at)
            .u64(self.expires_at)
            .text_map(self.attributes)
            .finish()
        )

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Certificate:
        r = Reader(data, _CERT, what="certificate")
        kind = r.text(max_len=8, field="kind")
        if kind not in ("user", "device"):
            raise DecodeError("certificate: kind must be 'user' or 'device'")
        fields = dict(
            organisation_id=r.text(max_len=_MAX_ID, field="organisation_id"),
            user_id=r.text(max_len=_MAX_ID, field="user_id"),
            device_id=r.text(max_len=_MAX_ID, field="device_id"),
            user_kind=r.text(max_len=16, field="user_kind"),
            name=r.text(max_len=256, field="name"),
            signing_key=VerifyKey(r.blob(exact=32, field="signing_key")),
        )
        hpke_raw = r.optional_bytes(max_len=2048, field="hpke_key")
        cert = cls(
            kind=kind,  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
            hpke_key=HpkePublicKey(hpke_raw) if hpke_raw is not None else None,
            issuer_key_id=r.blob(exact=32, field="issuer_key_id"),
            issued_at=r.u64("issued_at"),
            expires_at=r.u64("expires_at"),
            attributes=r.text_map(field="attributes"),
            signature=r.blob(exact=64, field="signature"),
        )
        r.finish()
        return cert

    def check_signed_by(self, issuer: VerifyKey) -> None:
        """Raise :class:`CertificateError` unless ``issuer`` issued and signed this certificate."""
        if self.issuer_key_id != issuer.key_id:
            raise CertificateError(f"certificate of {self.subject_id!r} names another issuer")
        try:
            issuer.verify(self.signature, self.to_be_signed())
        except SignatureError as exc:
            raise CertificateError(f"certificate of {self.subject_id!r}: bad signature") from exc

    def check_valid_at(self, now: int) -> None:
        if not self.issued_at <= now < self.expires_at:
            raise CertificateError(
                f"certificate of {self.subject_id!r} is not valid at {now} "
                f"(valid {self.issued_at}..{self.expires_at})"
            )


def issue_user_certificate(
    root: SigningKey,
    *,
    organisation_id: str,
    user_id: str,
    user_kind: str,
    name: str,
    identity_key: VerifyKey,
    issued_at: int,
    expires_at: int,
    attributes: dict[str, str] | None = None,
) -> Certificate:
    """The organisation root certifies a user's identity key."""
    draft = Certificate(
        "user", organisation_id, user_id, "", user_kind, name, identity_key, None,
        root.verify_key.key_id, issued_at, expires_at, dict(attributes or {}),
    )  # fmt: skip
    return _signed(draft, root)


def issue_device_certificate(
    user_key: SigningKey,
    user_cert: Certificate,
    *,
    device_id: str,
    name: str,
    signing_key: VerifyKey,
    hpke_key: HpkePublicKey,
    issued_at: int,
    expires_at: int,
) -> Certificate:
    """A user's identity key certifies one of that user's devices."""
    if user_key.verify_key != user_cert.signing_key:
        raise CertificateError("the identity key does not match the user certificate")
    draft = Certificate(
        "device", user_cert.organisation_id, user_cert.user_id, device_id, user_cert.user_kind,
        name, signing_key, hpke_key, user_key.verify_key.key_id, issued_at, expires_at, {},
    )  # fmt: skip
    return _signed(draft, user_key)


def _signed(draft: Certificate, issuer: SigningKey) -> Certificate:
    return replace(draft, signature=issuer.sign(draft.to_be_signed()))


def verify_user_certificate(
    user_cert: Certificate,
    root: VerifyKey,
    *,
    organisation_id: str,
    now: int,
    revoked: Container[bytes] = frozenset(),
) -> None:
    """Check that ``user_cert`` is a user of ``organisation_id`` certified by its ``root``."""
    if user_cert.kind != "user":
        raise CertificateError("expected a user certificate")
    if user_cert.organisation_id != organisation_id:
        raise CertificateError(f"user {user_cert.user_id!r} belongs to another organisation")
    user_cert.check_signed_by(root)
    user_cert.check_valid_at(now)
    if user_cert.signing_key.key_id in revoked:
        raise CertificateError(f"user {user_cert.user_id!r} has been revoked")


def verify_device_chain(
    device_cert: Certificate,
    user_cert: Certificate,
    root: VerifyKey,
    *,
    organisation_id: str,
    now: int,
    revoked: Container[bytes] = frozenset(),
) -> None:
    """Check the chain device -> user -> organisation root at time ``now``.

    ``revoked`` holds key ids (of identity or device signing keys) taken from verified
    :class:`Revocation` statements.
    """
    verify_user_certificate(
        user_cert, root, organisation_id=organisation_id, now=now, revoked=revoked
    )
    if device_cert.kind != "device":
        raise CertificateError("expected a device certificate")
    if device_cert.user_id != user_cert.user_id or device_cert.organisation_id != organisation_id:
        raise CertificateError(f"device {device_cert.device_id!r} belongs to another user")
    if device_cert.user_kind != user_cert.user_kind:
        raise CertificateError(f"device {device_cert.device_id!r} misstates its user's kind")
    device_cert.check_signed_by(user_cert.signing_key)
    device_cert.check_valid_at(now)
    if device_cert.signing_key.key_id in revoked:
        raise CertificateError(f"device {device_cert.device_id!r} has been revoked")


@dataclass(frozen=True)
class Revocation:
    """A signed statement that a key (a user's identity key or a device key) is revoked."""

    organisation_id: str
    subject_id: str
    revoked_key_id: bytes
    reason: str
    revoked_at: int
    issuer_key_id: bytes
    signature: bytes = b""

    def to_be_signed(self) -> bytes:
        return (
            Writer(_REVOCATION)
            .text(self.organisation_id)
            .text(self.subject_id)
            .blob(self.revoked_key_id)
            .text(self.reason)
            .u64(self.revoked_at)
            .blob(self.issuer_key_id)
            .finish()
        )

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Revocation:
        r = Reader(data, _REVOCATION, what="revocation")
        rev = cls(
            organisation_id=_check_id(r.text(max_len=_MAX_ID, field="organisation_id"), "org"),
            subject_id=_check_id(r.text(max_len=_MAX_ID, field="subject_id"), "subject"),
            revoked_key_id=r.blob(exact=32, field="revoked_key_id"),
            reason=r.text(max_len=1024, field="reason"),
            revoked_at=r.u64("revoked_at"),
            issuer_key_id=r.blob(exact=32, field="issuer_key_id"),
            signature=r.blob(exact=64, field="signature"),
        )
        r.finish()
        return rev

    @classmethod
    def issue(
        cls,
        issuer: SigningKey,
        *,
        organisation_id: str,
        subject_id: str,
        revoked_key: VerifyKey,
        reason: str,
        revoked_at: int,
    ) -> Revocation:
        draft = cls(
            organisation_id, subject_id, revoked_key.key_id, reason, revoked_at,
            issuer.verify_key.key_id,
        )  # fmt: skip
        return replace(draft, signature=issuer.sign(draft.to_be_signed()))

    def verify(
        self, root: VerifyKey, subject: Certificate, *, user_cert: Certificate | None = None
    ) -> None:
        """Check this statement revokes ``subject``'s key and was signed by ``root`` — the root
        of the subject's own organisation — or, for a device, by its user's identity key
        (``user_cert``, itself certified by ``root``)."""
        if (subject.organisation_id, subject.signing_key.key_id) != (
            self.organisation_id,
            self.revoked_key_id,
        ):
            raise CertificateError("revocation does not name this certificate's key")
        issuer = self._issuer(root, subject, user_cert)
        try:
            issuer.verify(self.signature, self.to_be_signed())
        except SignatureError as exc:
            raise CertificateError("revocation: bad signature") from exc

    def _issuer(
        self, root: VerifyKey, subject: Certificate, user_cert: Certificate | None
    ) -> VerifyKey:
        if self.issuer_key_id == root.key_id:
            return root
        if user_cert is None or self.issuer_key_id != user_cert.signing_key.key_id:
            raise CertificateError("revocation is not signed by an authority of the organisation")
        user_cert.check_signed_by(root)
        own_device = subject.kind == "device" and subject.user_id == user_cert.user_id
        if user_cert.organisation_id != self.organisation_id or not own_device:
            raise CertificateError("a user may revoke only its own devices")
        return user_cert.signing_key


class RevokedKeys(Container[bytes]):
    """Revoked key ids, each with the time its revocation takes effect (``revoked_at``).

    As a container it holds every revoked key (for a check made now); :meth:`at` gives the
    keys revoked at a past moment, so that what was valid when it was signed — a commit, a
    charter version, a message — stays valid when verified later.
    """

    def __init__(self, times: Mapping[bytes, int] | None = None) -> None:
        self._times = dict(times or {})

    @classmethod
    def of(cls, revocations: Iterable[Revocation]) -> RevokedKeys:
        """The keys named by verified revocations (the earliest time wins)."""
        times: dict[bytes, int] = {}
        for rev in revocations:
            times[rev.revoked_key_id] = min(
                rev.revoked_at, times.get(rev.revoked_key_id, rev.revoked_at)
            )
        return cls(times)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._times

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._times)

    def __len__(self) -> int:
        return len(self._times)

    def at(self, when: int) -> frozenset[bytes]:
        """The keys whose revocation took effect at or before ``when``."""
        if not self._times:  # asked for every message a sync opens
            return frozenset()
        return frozenset(k for k, t in self._times.items() if t <= when)


@dataclass(frozen=True)
class EnrolmentRequest:
    """A device's request to be enrolled, made where its keys were made (design §3).

    The user's identity key and the device's keys never leave the device: the request carries
    the identity *public* key and the device certificate that key already signed, and is
    itself signed by the identity key. The focal point compares :attr:`fingerprint` with the
    one the user reads out, then certifies the identity key with the organisation root.
    """

    organisation_id: str
    user_id: str
    user_kind: str
    name: str
    identity_key: VerifyKey
    device_cert: Certificate
    created_at: int
    signature: bytes = b""

    @classmethod
    def create(
        cls,
        identity: SigningKey,
        *,
        organisation_id: str,
        user_id: str,
        user_kind: str,
        name: str,
        device_id: str,
        device_key: VerifyKey,
        hpke_key: HpkePublicKey,
        now: int,
        lifetime: int,
    ) -> EnrolmentRequest:
        """Certify the device with the new identity key and sign the request with it."""
        device = _signed(
            Certificate(
                "device", organisation_id, user_id, device_id, user_kind, device_id,
                device_key, hpke_key, identity.verify_key.key_id, now - 60, now + lifetime, {},
            ),
            identity,
        )  # fmt: skip
        draft = cls(organisation_id, user_id, user_kind, name, identity.verify_key, device, now)
        return replace(draft, signature=identity.sign(draft.to_be_signed()))

    def to_be_signed(self) -> bytes:
        return (
            Writer(_ENROL_REQUEST)
            .text(self.organisation_id)
            .text(self.user_id)
            .text(self.user_kind)
            .text(self.name)
            .blob(self.identity_key.raw)
            .blob(self.device_cert.to_bytes())
            .u64(self.created_at)
            .finish()
        )

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> EnrolmentRequest:
        r = Reader(data, _ENROL_REQUEST, what="enrolment request")
        request = cls(
            organisation_id=_check_id(r.text(max_len=_MAX_ID, field="organisation_id"), "org"),
            user_id=_check_id(r.text(max_len=_MAX_ID, field="user_id"), "user"),
            user_kind=r.text(max_len=16, field="user_kind"),
            name=r.text(max_len=256, field="name"),
            identity_key=VerifyKey(r.blob(exact=32, field="identity_key")),
            device_cert=Certificate.from_bytes(r.blob(max_len=8192, field="device_cert")),
            created_at=r.u64("created_at"),
            signature=r.blob(exact=64, field="signature"),
        )
        r.finish()
        return request

    @property
    def fingerprint(self) -> str:
        """Six groups of five digits over everything signed, for reading aloud."""
        return fingerprint_text(sha256(self.to_be_signed()))

    def verify(self) -> None:
        """Check the request is signed by its identity key and that key certified the device
        of the same organisation, user and kind; raise :class:`CertificateError` if not."""
        try:
            self.identity_key.verify(self.signature, self.to_be_signed(), what="request")
        except SignatureError as exc:
            raise CertificateError(
                "enrolment request: bad signature (altered on the way?)"
            ) from exc
        cert = self.device_cert
        if (cert.kind, cert.organisation_id, cert.user_id, cert.user_kind) != (
            "device", self.organisation_id, self.user_id, self.user_kind,
        ):  # fmt: skip
            raise CertificateError("enrolment request: the device certificate names another user")
        cert.check_signed_by(self.identity_key)
