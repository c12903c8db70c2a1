"""The operation charter: who is in an operation, in which role, and what each area admits.

A charter version lists the operation (id, code, name, phase dates), its member
organisations (id, name, kind, role, root public key) and its areas (who may read, who may
post, history policy). Versions form a hash chain: version 1 names no predecessor, each later
version names the hash of the one before and must be signed by a coordinator *of that previous
version*. A joining client pins the coordinator organisation's root key (its fingerprint came
with the invitation) and verifies the chain from there with :func:`verify_charter_chain`.

The charter lists each member's root *public key*; its fingerprint is derived from it
(:attr:`Member.fingerprint`) for out-of-band comparison.

Each member also carries the reporting codes (ISO 3166 alpha-2) it reports seizures for
(:attr:`Member.reporting_codes`, design §15 "Provenance"). They came with the second encoding
of a charter, label ``opseal/v1/charter/2``. A version encoded under the first label
(``opseal/v1/charter``, written before the field existed) is still read, so stored and signed
chains stay verifiable, and its members report for nothing: its :attr:`Charter.encoding` is 1
and it cannot hold codes. Every version a client builds uses the second encoding or later, so
a coordinator gives a legacy operation its codes by issuing the next version.

Each area may set its rotation period (:attr:`AreaPolicy.rotation_period_s`, design §4
"Forks and freezes"): how often its epoch is expected to rotate, past which a member warns it
is frozen. It came with the third encoding (``opseal/v1/charter/3``), which a version uses only
when one of its areas sets a period; the others keep the second encoding (and its hash), and
read a period of 0: :data:`DEFAULT_ROTATION_PERIOD`.

Each area may also set its history window (:attr:`AreaPolicy.history_window_s`, design §3
"Retention of epoch secrets"): how long a device keeps an epoch's secret once the next epoch
began. It came with the fourth encoding (``opseal/v1/charter/4``, which also carries the
rotation period), used only when an area sets a window; others keep their encoding and hash,
and read a window of 0: the history policy's default (``shared`` keeps every secret,
``since-join`` keeps them :data:`DEFAULT_SINCE_JOIN_WINDOW`).

Long because: one signed type with four encodings that must all stay readable, its members
and areas, and the chain check that ties versions together; split, the encodings would have
to be kept in step across modules.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from .certs import Certificate, verify_user_certificate
from .encoding import Reader, Writer, label, length_prefixed, sha256
from .errors import CertificateError, CharterError, DecodeError, PolicyError, SignatureError
from .keys import SigningKey, VerifyKey
from .roles import HISTORY_POLICIES, ROLES

__all__ = [
    "DEFAULT_ROTATION_PERIOD",
    "DEFAULT_SINCE_JOIN_WINDOW",
    "ENCODINGS",
    "HISTORY_POLICIES",
    "MAX_REPORTING_CODES",
    "ROLES",
    "AreaPolicy",
    "Charter",
    "Member",
    "verify_charter_chain",
    "verify_successor",
]

_CHARTER_V1 = label("charter")
_CHARTER = label("charter/2")
_CHARTER_3 = label("charter/3")
_CHARTER_4 = label("charter/4")
ENCODINGS = {1: _CHARTER_V1, 2: _CHARTER, 3: _CHARTER_3, 4: _CHARTER_4}
"""Charter encodings by number: 1 has no reporting codes, 2 has them, 3 also has the areas'
rotation periods (used only when an area sets one), 4 also their history windows (used only
when an area sets one)."""
DEFAULT_ROTATION_PERIOD = 86400
"""Seconds between an area's scheduled epoch rotations when its charter sets none."""
_ROTATION_RANGE = (3600, 30 * 86400)
DEFAULT_SINCE_JOIN_WINDOW = 7 * 86400
"""Seconds a ``since-join`` area's epoch secret is kept after the next epoch began, when its
charter sets no window."""
_WINDOW_RANGE = (3600, 10 * 366 * 86400)
_NO_PREDECESSOR = bytes(32)
_REPORTING_CODE = re.compile(r"[A-Z]{2}")
MAX_REPORTING_CODES = 64


def _text(value: str, what: str, max_len: int = 256) -> str:
    if not value or len(value.encode()) > max_len or not value.isprintable():
        raise DecodeError(f"charter: {what} must be 1-{max_len} printable bytes")
    return value


def _reporting_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Codes as a sorted tuple without repeats, each two capital letters."""
    if isinstance(codes, str):
        raise DecodeError("charter: reporting codes must be a list of codes, not one text")
    found = tuple(sorted(set(codes)))
    for code in found:
        if not isinstance(code, str) or not _REPORTING_CODE.fullmatch(code):
            raise DecodeError(
                f"charter: reporting code {code!r} is not an ISO 3166 alpha-2 code such as FR"
            )
    if len(found) > MAX_REPORTING_CODES:
        raise DecodeError(f"charter: at most {MAX_REPORTING_CODES} reporting codes per member")
    return found


@dataclass(frozen=True)
class Member:
    """A member organisation of the operation, its role, and the reporting codes (ISO 3166
    alpha-2) its seizure records may carry as ``reporting_country`` — none, for an
    organisation that reports no seizures."""

    organisation_id: str
    name: str
    kind: str
    role: str
    root_key: VerifyKey
    reporting_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _text(self.organisation_id, "organisation id", 128)
        _text(self.name, "organisation name")
        _text(self.kind, "organisation kind", 64)
        if self.role not in ROLES:
            raise DecodeError(f"charter: role {self.role!r} is not one of {', '.join(ROLES)}")
        object.__setattr__(self, "reporting_codes", _reporting_codes(self.reporting_codes))

    @property
    def fingerprint(self) -> str:
        return self.root_key.fingerprint

    def reports_for(self, country: str) -> bool:
        """Whether a record with this ``reporting_country`` may come from this member."""
        return country in self.reporting_codes

    def _write(self, w: Writer, encoding: int) -> None:
        w.text(self.organisation_id).text(self.name).text(self.kind).text(self.role)
        w.blob(self.root_key.raw)
        if encoding >= 2:
            w.list(self.reporting_codes, Writer.text)

    @classmethod
    def _reader(cls, encoding: int) -> Callable[[Reader], Member]:
        def read(r: Reader) -> Member:
            member = cls(
                r.text(max_len=128, field="organisation_id"),
                r.text(max_len=256, field="name"),
                r.text(max_len=64, field="kind"),
                r.text(max_len=16, field="role"),
                VerifyKey(r.blob(exact=32, field="root_key")),
            )
            if encoding < 2:
                return member
            codes = r.list(
                lambda x: x.text(max_len=2, field="reporting_codes"),
                max_count=MAX_REPORTING_CODES,
                field="reporting_codes",
            )
            if codes != sorted(set(codes)):
                raise DecodeError("charter: reporting codes must be sorted and unique")
            return replace(member, reporting_codes=tuple(codes))

        return read


@dataclass(frozen=True)
class AreaPolicy:
    """One area of the operation: who reads it, who posts in it, what newcomers may read."""

    name: str
    read_roles: frozenset[str]
    post_roles: frozenset[str]
    history: str = "shared"
    rotation_period_s: int = 0
    """Seconds between scheduled rotations of the area's epoch; 0: the default (a day)."""
    history_window_s: int = 0
    """Seconds a device keeps an epoch's secret once the next epoch began; 0: the history
    policy's default (``shared``: for ever; ``since-join``: :data:`DEFAULT_SINCE_JOIN_WINDOW`)."""

    def __post_init__(self) -> None:
        _text(self.name, "area name", 64)
        low, high = _ROTATION_RANGE
        if self.rotation_period_s and not low <= self.rotation_period_s <= high:
            raise DecodeError(f"charter: area {self.name!r} rotation period must be {low}-{high} s")
        low, high = _WINDOW_RANGE
        if self.history_window_s and not low <= self.history_window_s <= high:
            raise DecodeError(f"charter: area {self.name!r} history window must be {low}-{high} s")
        object.__setattr__(self, "read_roles", frozenset(self.read_roles))
        object.__setattr__(self, "post_roles", frozenset(self.post_roles))
        unknown = (self.read_roles | self.post_roles) - set(ROLES)
        if unknown:
            raise DecodeError(f"charter: area {self.name!r} names unknown roles {sorted(unknown)}")
        if "coordinator" not in self.read_roles:
            raise DecodeError(f"charter: coordinators must read area {self.name!r}")
        if not self.post_roles <= self.read_roles:
            raise DecodeError(f"charter: area {self.name!r} lets roles post that cannot read")
        if "observer" in self.post_roles:
            raise DecodeError("charter: observers are read-only and may not post")
        if self.history not in HISTORY_POLICIES:
            raise DecodeError(f"charter: history policy must be one of {HISTORY_POLICIES}")

    @property
    def rotation_period(self) -> int:
        """Seconds between scheduled rotations (the charter's value, or the default)."""
        return self.rotation_period_s or DEFAULT_ROTATION_PERIOD

    @property
    def history_window(self) -> int | None:
        """Seconds an epoch secret is kept once superseded (None: for ever): the charter's
        window, or the history policy's default."""
        if self.history_window_s:
            return self.history_window_s
        return None if self.history == "shared" else DEFAULT_SINCE_JOIN_WINDOW

    def _write(self, w: Writer, encoding: int) -> None:
        w.text(self.name)
        w.list(sorted(self.read_roles), Writer.text)
        w.list(sorted(self.post_roles), Writer.text)
        w.text(self.history)
        if encoding >= 3:
            w.u64(self.rotation_period_s)
        if encoding >= 4:
            w.u64(self.history_window_s)

    @classmethod
    def _reader(cls, encoding: int) -> Callable[[Reader], AreaPolicy]:
        def read(r: Reader) -> AreaPolicy:
            def roles(field_name: str) -> frozenset[str]:
                names = r.list(lambda x: x.text(max_len=16, field=field_name), max_count=8)
                if names != sorted(set(names)):
                    raise DecodeError(f"charter: {field_name} must be sorted and unique")
                return frozenset(names)

            name = r.text(max_len=64, field="area")
            area = cls(name, roles("read_roles"), roles("post_roles"), r.text(max_len=16))
            if encoding < 3:
                return area
            area = replace(area, rotation_period_s=r.u64("rotation_period_s"))
            if encoding < 4:
                return area
            return replace(area, history_window_s=r.u64("history_window_s"))

        return read


@dataclass(frozen=True)
class Charter:
    """One signed version of an operation charter. Build version 1 with :meth:`create`, later
    versions with :meth:`next_version`, then sign with :meth:`signed`."""

    operation_id: str
    code: str
    name: str
    starts_at: int
    ends_at: int
    version: int
    previous_hash: bytes
    members: tuple[Member, ...]
    areas: tuple[AreaPolicy, ...]
    issued_at: int
    signer: Certificate | None = None
    signature: bytes = b""
    encoding: int = 2
    """Which encoding (:data:`ENCODINGS`) this version is signed in; 1 only when read."""
    _by_org: dict[str, Member] = field(init=False, repr=False, compare=False)
    _by_area: dict[str, AreaPolicy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _text(self.operation_id, "operation id", 128)
        _text(self.code, "operation code", 64)
        _text(self.name, "operation name")
        if self.ends_at < self.starts_at:
            raise DecodeError("charter: the operation ends before it starts")
        if self.version < 1 or (self.version == 1) != (self.previous_hash == _NO_PREDECESSOR):
            raise DecodeError("charter: only version 1 has no predecessor")
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "areas", tuple(self.areas))
        if self.encoding not in ENCODINGS:
            raise DecodeError(f"charter: unknown encoding {self.encoding}")
        if self.encoding == 1 and any(m.reporting_codes for m in self.members):
            raise DecodeError("charter: the first encoding cannot hold reporting codes")
        if self.encoding < 3 and any(a.rotation_period_s for a in self.areas):
            raise DecodeError("charter: only the third encoding holds rotation periods")
        if self.encoding < 4 and any(a.history_window_s for a in self.areas):
            raise DecodeError("charter: only the fourth encoding holds history windows")
        by_org = {m.organisation_id: m for m in self.members}
        by_area = {a.name: a for a in self.areas}
        if len(by_org) != len(self.members) or len(by_area) != len(self.areas):
            raise DecodeError("charter: organisations and areas must be unique")
        if not any(m.role == "coordinator" for m in self.members):
            raise DecodeError("charter: at least one member must be a coordinator")
        object.__setattr__(self, "_by_org", by_org)
        object.__setattr__(self, "_by_area", by_area)

    @classmethod
    def create(
        cls,
        *,
        operation_id: str,
        code: str,
        name: str,
        starts_at: int,
        ends_at: int,
        members: Iterable[Member],
        areas: Iterable[AreaPolicy],
        issued_at: int,
    ) -> Charter:
        """An unsigned version 1."""
        areas = tuple(areas)
        return cls(
            operation_id, code, name, starts_at, ends_at, 1, _NO_PREDECESSOR,
            tuple(members), areas, issued_at, encoding=_encoding_for(areas),
        )  # fmt: skip

    def next_version(
        self,
        *,
        issued_at: int,
        members: Iterable[Member] | None = None,
        areas: Iterable[AreaPolicy] | None = None,
        **changes: object,
    ) -> Charter:
        """An unsigned successor of this (signed) version with the given changes."""
        areas = tuple(self.areas if areas is None else areas)
        return replace(
            self,
            version=self.version + 1,
            previous_hash=self.hash,
            members=tuple(self.members if members is None else members),
            areas=areas,
            issued_at=issued_at,
            signer=None,
            signature=b"",
            encoding=_encoding_for(areas),
            **changes,  # type: ignore[arg-type]
        )

    def signed(self, key: SigningKey, cert: Certificate) -> Charter:
        """This version signed by a coordinator's identity key (``cert`` certifies it)."""
        if key.verify_key != cert.signing_key:
            raise CharterError("the signing key does not match the signer's certificate")
        draft = replace(self, signer=cert, signature=b"")
        return replace(draft, signature=key.sign(draft.to_be_signed()))

    # -- encoding ----------------------------------------------------------------------
    def to_be_signed(self) -> bytes:
        if self.signer is None:
            raise CharterError("charter version is not signed")
        w = Writer(ENCODINGS[self.encoding]).text(self.operation_id).text(self.code)
        w.text(self.name)
        w.u64(self.starts_at).u64(self.ends_at).u32(self.version).blob(self.previous_hash)
        w.list(self.members, lambda w, m: m._write(w, self.encoding))
        w.list(self.areas, lambda w, a: a._write(w, self.encoding))
        return w.u64(self.issued_at).blob(self.signer.to_bytes()).finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Charter:
        encoding = next(
            (
                n
                for n, tag in ENCODINGS.items()
                if bytes(data[: 4 + len(tag)]) == length_prefixed(tag)
            ),
            2,
        )
        r = Reader(data, ENCODINGS[encoding], what="charter")
        charter = cls(
            operation_id=r.text(max_len=128, field="operation_id"),
            code=r.text(max_len=64, field="code"),
            name=r.text(max_len=256, field="name"),
            starts_at=r.u64("starts_at"),
            ends_at=r.u64("ends_at"),
            version=r.u32("version"),
            previous_hash=r.blob(exact=32, field="previous_hash"),
            members=tuple(r.list(Member._reader(encoding), max_count=4096, field="members")),
            areas=tuple(r.list(AreaPolicy._reader(encoding), max_count=256, field="areas")),
            issued_at=r.u64("issued_at"),
            signer=Certificate.from_bytes(r.blob(max_len=8192, field="signer")),
            signature=r.blob(exact=64, field="signature"),
            encoding=encoding,
        )
        r.finish()
        return charter

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of the signed encoding: what the next version and group states point to."""
        return sha256(self.to_bytes())

    # -- policy ------------------------------------------------------------------------
    def member(self, organisation_id: str) -> Member:
        try:
            return self._by_org[organisation_id]
        except KeyError:
            raise PolicyError(
                f"organisation {organisation_id!r} is not a member of {self.code}"
            ) from None

    def area(self, name: str) -> AreaPolicy:
        try:
            return self._by_area[name]
        except KeyError:
            raise PolicyError(f"operation {self.code} has no area {name!r}") from None

    def role_of(self, organisation_id: str) -> str:
        return self.member(organisation_id).role

    def may_read(self, role: str, area: str) -> bool:
        return role in self.area(area).read_roles

    def may_post(self, role: str, area: str) -> bool:
        return role in self.area(area).post_roles

    def check_may_read(self, organisation_id: str, area: str) -> None:
        role = self.role_of(organisation_id)
        if not self.may_read(role, area):
            raise PolicyError(f"role {role!r} may not read area {area!r}")

    def check_may_post(self, organisation_id: str, area: str) -> None:
        role = self.role_of(organisation_id)
        if not self.may_post(role, area):
            raise PolicyError(f"role {role!r} may not post in area {area!r}")

    def check_may_admit(self, committer_org: str, device_org: str, area: str) -> None:
        """A coordinator, or a member of the device's own organisation, admits a device whose
        organisation's role may read the area."""
        self.check_may_read(device_org, area)
        if committer_org != device_org and self.role_of(committer_org) != "coordinator":
            raise PolicyError(
                f"organisation {committer_org!r} may not admit devices of {device_org!r}"
            )

    def check_may_remove(self, committer_org: str, device_org: str) -> None:
        """A coordinator, or a member of the device's own organisation, removes a device."""
        if committer_org != device_org and self.role_of(committer_org) != "coordinator":
            raise PolicyError(
                f"organisation {committer_org!r} may not remove devices of {device_org!r}"
            )

    def check_may_create_area(self, organisation_id: str) -> None:
        if self.role_of(organisation_id) != "coordinator":
            raise PolicyError("only a coordinator may create an area")

    # -- verification ------------------------------------------------------------------
    def verify_signer(
        self, authority: Charter, *, now: int, revoked: Container[bytes] = frozenset()
    ) -> None:
        """Check this version is signed by a coordinator user listed in ``authority`` whose
        identity key is not in ``revoked``."""
        if self.signer is None:
            raise CharterError("charter version is not signed")
        if self.signer.signing_key.key_id in revoked:
            raise CharterError(f"charter version {self.version} is signed by a revoked key")
        org = self.signer.organisation_id
        try:
            member = authority.member(org)
        except PolicyError as exc:
            raise CharterError("charter signer's organisation is not a member") from exc
        if member.role != "coordinator":
            raise CharterError(f"charter signer's organisation {org!r} is not a coordinator")
        try:
            verify_user_certificate(
                self.signer, member.root_key, organisation_id=org, now=self.issued_at
            )
            self.signer.signing_key.verify(self.signature, self.to_be_signed(), what="charter")
        except (CertificateError, SignatureError) as exc:
            raise CharterError(f"charter version {self.version}: {exc}") from exc
        if self.issued_at > now:
            raise CharterError(f"charter version {self.version} is issued in the future")


def verify_charter_chain(
    versions: Sequence[Charter],
    *,
    pinned_root_key_id: bytes,
    now: int,
    revoked: Container[bytes] = frozenset(),
) -> Charter:
    """Verify a charter's versions from version 1 and return the latest.

    Version 1 must be signed by a coordinator organisation whose root key id is the pinned one;
    each later version must extend the hash chain and be signed by a coordinator of its
    predecessor.
    """
    if not versions:
        raise CharterError("no charter versions to verify")
    first = versions[0]
    if first.version != 1:
        raise CharterError("the charter chain must start at version 1")
    first.verify_signer(first, now=now, revoked=revoked)
    assert first.signer is not None
    if first.member(first.signer.organisation_id).root_key.key_id != pinned_root_key_id:
        raise CharterError("version 1 is not signed by the pinned coordinator organisation")
    for prev, new in itertools.pairwise(versions):
        verify_successor(prev, new, now=now, revoked=revoked)
    return versions[-1]


def verify_successor(
    prev: Charter, new: Charter, *, now: int, revoked: Container[bytes] = frozenset()
) -> None:
    """Check ``new`` directly follows the verified version ``prev``."""
    if new.operation_id != prev.operation_id:
        raise CharterError("charter version belongs to another operation")
    if new.version != prev.version + 1:
        raise CharterError(f"expected charter version {prev.version + 1}, got {new.version}")
    if new.previous_hash != prev.hash:
        raise CharterError(f"charter version {new.version} does not extend the chain")
    if new.issued_at < prev.issued_at:
        raise CharterError(f"charter version {new.version} predates its predecessor")
    new.verify_signer(prev, now=now, revoked=revoked)


def _encoding_for(areas: Iterable[AreaPolicy]) -> int:
    """The encoding a new version is signed in: the fourth only if an area sets a history
    window, the third only if an area sets a rotation period, so that every other charter
    keeps the bytes (and hash) it always had."""
    areas = tuple(areas)
    if any(a.history_window_s for a in areas):
        return 4
    return 3 if any(a.rotation_period_s for a in areas) else 2
