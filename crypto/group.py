"""Areas as cryptographic groups: states, key packages and commits (design §4).

A :class:`GroupState` is one epoch of an area: its roster of devices and the hashes that tie
it to the charter version and the previous state. A :class:`Commit` moves an area from epoch
``n`` to ``n + 1``: it adds devices (each by a :class:`KeyPackage`), removes devices, or
updates the committer's own keys; it carries a fresh 32-byte epoch secret sealed with HPKE to
every device of the new roster, and, for ``shared`` areas, past epoch secrets sealed to each
newcomer. Epoch 0 creates the area.

:func:`apply_commit` is what every client runs on every commit it receives: it checks the
signature, the committer's right under the charter, every added device's certificate chain,
the area's audience, the epoch and the previous-state hash, and returns the next state — or
raises. :func:`create_commit` builds a commit and validates it through the same rules.

Long because: the state, key package and commit types and the one validation path every client
runs on them belong together; split, the trust rules of one object would be spread over files.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property

from .certs import Certificate, issue_device_certificate, verify_device_chain
from .charter import Charter
from .encoding import Reader, Writer, decode_all, label, length_prefixed, sha256
from .errors import CertificateError, CommitError, DecryptionError, EpochError, PolicyError
from .keys import HpkePrivateKey, HpkePublicKey, SigningKey, VerifyKey, hkdf_sha256

__all__ = [
    "MAX_CLOCK_SKEW",
    "Commit",
    "DeviceIdentity",
    "GroupState",
    "KeyPackage",
    "RosterEntry",
    "SealedSecret",
    "apply_commit",
    "create_area",
    "create_commit",
    "epoch_authenticator",
    "open_epoch_secret",
    "open_history",
]

_KEY_PACKAGE = label("key-package")
_ROSTER = label("roster")
_STATE = label("group-state")
_COMMIT = label("commit")
_EPOCH_INFO = label("epoch-secret")
_HISTORY_INFO = label("history")
_CONFIRM = label("epoch-confirm")
_AUTHENTICATOR = label("epoch-authenticator")
_NO_STATE = bytes(32)
MAX_CLOCK_SKEW = 300
"""Seconds a commit's date may run ahead of the receiver's clock."""
_MAX_ROSTER = 10_000


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device holds: its certificate chain and private keys. Never leaves the device."""

    user_cert: Certificate
    device_cert: Certificate
    signing_key: SigningKey
    hpke_key: HpkePrivateKey

    @classmethod
    def generate(
        cls,
        user_key: SigningKey,
        user_cert: Certificate,
        *,
        device_id: str,
        name: str,
        issued_at: int,
        expires_at: int,
    ) -> DeviceIdentity:
        """Fresh device keys, certified by the user's identity key."""
        signing, hpke = SigningKey.generate(), HpkePrivateKey.generate()
        cert = issue_device_certificate(
            user_key, user_cert, device_id=device_id, name=name,
            signing_key=signing.verify_key, hpke_key=hpke.public_key,
            issued_at=issued_at, expires_at=expires_at,
        )  # fmt: skip
        return cls(user_cert, cert, signing, hpke)

    @property
    def device_id(self) -> str:
        return self.device_cert.device_id

    @property
    def organisation_id(self) -> str:
        return self.device_cert.organisation_id

    def __repr__(self) -> str:
        return f"DeviceIdentity({self.device_id!r}, ***)"


@dataclass(frozen=True)
class KeyPackage:
    """A device's request to join an area: its certificate chain, signed by the device key."""

    operation_id: str
    area: str
    user_cert: Certificate
    device_cert: Certificate
    created_at: int
    signature: bytes = b""

    @classmethod
    def create(
        cls, identity: DeviceIdentity, *, operation_id: str, area: str, now: int
    ) -> KeyPackage:
        draft = cls(operation_id, area, identity.user_cert, identity.device_cert, now)
        return replace(draft, signature=identity.signing_key.sign(draft.to_be_signed()))

    @property
    def device_id(self) -> str:
        return self.device_cert.device_id

    def to_be_signed(self) -> bytes:
        w = Writer(_KEY_PACKAGE).text(self.operation_id).text(self.area)
        w.blob(self.user_cert.to_bytes()).blob(self.device_cert.to_bytes())
        return w.u64(self.created_at).finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyPackage:
        return decode_all(data, _KEY_PACKAGE, "key package", cls._read_fields)

    @classmethod
    def _read_fields(cls, r: Reader) -> KeyPackage:
        return cls(
            r.text(max_len=128, field="operation_id"),
            r.text(max_len=64, field="area"),
            Certificate.from_bytes(r.blob(max_len=8192, field="user_cert")),
            Certificate.from_bytes(r.blob(max_len=8192, field="device_cert")),
            r.u64("created_at"),
            r.blob(exact=64, field="signature"),
        )

    def verify(self, charter: Charter, *, now: int, revoked: Container[bytes]) -> None:
        """Check the package's signature and its chain to a root listed in ``charter``."""
        if self.operation_id != charter.operation_id:
            raise CommitError(f"key package of {self.device_id!r} is for another operation")
        org = self.device_cert.organisation_id
        root = charter.member(org).root_key
        verify_device_chain(
            self.device_cert, self.user_cert, root, organisation_id=org, now=now, revoked=revoked
        )
        self.device_cert.signing_key.verify(
            self.signature, self.to_be_signed(), what=f"key package of {self.device_id!r}"
        )


@dataclass(frozen=True)
class RosterEntry:
    """One device of an area's roster."""

    device_id: str
    user_id: str
    organisation_id: str
    user_kind: str
    signing_key: VerifyKey
    hpke_key: HpkePublicKey
    user_key_id: bytes

    @classmethod
    def from_package(cls, package: KeyPackage) -> RosterEntry:
        cert = package.device_cert
        assert cert.hpke_key is not None
        return cls(
            cert.device_id, cert.user_id, cert.organisation_id, cert.user_kind,
            cert.signing_key, cert.hpke_key, package.user_cert.signing_key.key_id,
        )  # fmt: skip

    def is_revoked(self, revoked: Container[bytes]) -> bool:
        return self.signing_key.key_id in revoked or self.user_key_id in revoked

    def _write(self, w: Writer) -> None:
        w.text(self.device_id).text(self.user_id).text(self.organisation_id).text(self.user_kind)
        w.blob(self.signing_key.raw).blob(self.hpke_key.raw).blob(self.user_key_id)

    @classmethod
    def _read(cls, r: Reader) -> RosterEntry:
        return cls(
            r.text(max_len=128, field="device_id"),
            r.text(max_len=128, field="user_id"),
            r.text(max_len=128, field="organisation_id"),
            r.text(max_len=16, field="user_kind"),
            VerifyKey(r.blob(exact=32, field="signing_key")),
            HpkePublicKey(r.blob(max_len=2048, field="hpke_key")),
            r.blob(exact=32, field="user_key_id"),
        )


def _roster_hash(roster: Iterable[RosterEntry]) -> bytes:
    return sha256(Writer(_ROSTER).list(roster, lambda w, e: e._write(w)).finish())


@dataclass(frozen=True)
class GroupState:
    """One epoch of an area, as every member's client holds it."""

    instance_id: str
    operation_id: str
    area: str
    epoch: int
    roster: tuple[RosterEntry, ...]
    charter_hash: bytes
    previous_state_hash: bytes
    created_at: int = 0

    @cached_property
    def _by_device(self) -> dict[str, RosterEntry]:
        return {e.device_id: e for e in self.roster}

    def member(self, device_id: str) -> RosterEntry | None:
        return self._by_device.get(device_id)

    @cached_property
    def roster_hash(self) -> bytes:
        return _roster_hash(self.roster)

    def to_bytes(self) -> bytes:
        w = Writer(_STATE).text(self.instance_id).text(self.operation_id).text(self.area)
        w.u64(self.epoch).list(self.roster, lambda w, e: e._write(w))
        w.blob(self.charter_hash).blob(self.previous_state_hash)
        return w.u64(self.created_at).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupState:
        return decode_all(data, _STATE, "group state", cls._read_fields)

    @classmethod
    def _read_fields(cls, r: Reader) -> GroupState:
        return cls(
            r.text(max_len=128, field="instance_id"),
            r.text(max_len=128, field="operation_id"),
            r.text(max_len=64, field="area"),
            r.u64("epoch"),
            tuple(r.list(RosterEntry._read, max_count=_MAX_ROSTER, field="roster")),
            r.blob(exact=32, field="charter_hash"),
            r.blob(exact=32, field="previous_state_hash"),
            r.u64("created_at"),
        )

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.to_bytes())


@dataclass(frozen=True)
class SealedSecret:
    """An HPKE ciphertext for one recipient device."""

    device_id: str
    ciphertext: bytes

    def _write(self, w: Writer) -> None:
        w.text(self.device_id).blob(self.ciphertext)

    @classmethod
    def _read(cls, r: Reader) -> SealedSecret:
        return cls(r.text(max_len=128, field="device_id"), r.blob(max_len=1 << 20))


@dataclass(frozen=True)
class Commit:
    """A signed transition of an area from ``epoch - 1`` to ``epoch`` (or its creation at 0)."""

    instance_id: str
    operation_id: str
    area: str
    epoch: int
    previous_state_hash: bytes
    charter_hash: bytes
    committer: str
    adds: tuple[KeyPackage, ...]
    removes: tuple[str, ...]
    update: KeyPackage | None
    roster_hash: bytes
    confirmation: bytes
    sealed: tuple[SealedSecret, ...]
    history: tuple[SealedSecret, ...]
    created_at: int
    signature: bytes = b""

    def to_be_signed(self) -> bytes:
        w = Writer(_COMMIT).text(self.instance_id).text(self.operation_id).text(self.area)
        w.u64(self.epoch).blob(self.previous_state_hash).blob(self.charter_hash)
        w.text(self.committer)
        w.list(self.adds, lambda w, p: w.blob(p.to_bytes()))
        w.list(self.removes, Writer.text)
        w.optional_bytes(self.update.to_bytes() if self.update else None)
        w.blob(self.roster_hash).blob(self.confirmation)
        w.list(self.sealed, lambda w, s: s._write(w))
        w.list(self.history, lambda w, s: s._write(w))
        return w.u64(self.created_at).finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Commit:
        return decode_all(data, _COMMIT, "commit", cls._read_fields)

    @classmethod
    def _read_fields(cls, r: Reader) -> Commit:
        def package(x: Reader) -> KeyPackage:
            return KeyPackage.from_bytes(x.blob(max_len=32768, field="add"))

        def update(x: Reader) -> KeyPackage | None:
            raw = x.optional_bytes(max_len=32768, field="update")
            return KeyPackage.from_bytes(raw) if raw is not None else None

        return cls(
            instance_id=r.text(max_len=128, field="instance_id"),
            operation_id=r.text(max_len=128, field="operation_id"),
            area=r.text(max_len=64, field="area"),
            epoch=r.u64("epoch"),
            previous_state_hash=r.blob(exact=32, field="previous_state_hash"),
            charter_hash=r.blob(exact=32, field="charter_hash"),
            committer=r.text(max_len=128, field="committer"),
            adds=tuple(r.list(package, max_count=_MAX_ROSTER, field="adds")),
            removes=tuple(
                r.list(lambda x: x.text(max_len=128), max_count=_MAX_ROSTER, field="removes")
            ),
            update=update(r),
            roster_hash=r.blob(exact=32, field="roster_hash"),
            confirmation=r.blob(exact=32, field="confirmation"),
            sealed=tuple(r.list(SealedSecret._read, max_count=_MAX_ROSTER, field="sealed")),
            history=tuple(r.list(SealedSecret._read, max_count=_MAX_ROSTER, field="history")),
            created_at=r.u64("created_at"),
            signature=r.blob(exact=64, field="signature"),
        )

    @cached_property
    def hash(self) -> bytes:
        return sha256(self.to_bytes())


# -- key schedule ----------------------------------------------------------------------
def _context(w: Writer, instance_id: str, operation_id: str, area: str, epoch: int) -> Writer:
    return w.text(instance_id).text(operation_id).text(area).u64(epoch)


def _commit_context(purpose: bytes, commit: Commit) -> Writer:
    w = _context(
        Writer(purpose), commit.instance_id, commit.operation_id, commit.area, commit.epoch
    )
    return w.blob(commit.previous_state_hash)


def _seal_info(purpose: bytes, commit: Commit, entry: RosterEntry) -> bytes:
    return (
        _commit_context(purpose, commit).text(entry.device_id).blob(entry.hpke_key.key_id).finish()
    )


def _confirmation(secret: bytes, commit: Commit) -> bytes:
    """A one-way commitment to the epoch secret: members check they all hold the same one."""
    return hkdf_sha256(secret, _commit_context(_CONFIRM, commit).finish(), 32)


def epoch_authenticator(secret: bytes, state: GroupState) -> bytes:
    """What members on the same branch of an epoch share and nobody else can compute: HKDF of
    the epoch secret over the state's hash. Bound into every envelope header and receipt, it
    shows a fork (two commits for one epoch) at the first message or receipt that crosses it."""
    return hkdf_sha256(secret, Writer(_AUTHENTICATOR).blob(state.hash).finish(), 32)


def _encode_history(secrets: Mapping[int, bytes]) -> bytes:
    w = Writer(_HISTORY_INFO)
    return w.list(sorted(secrets.items()), lambda w, kv: w.u64(kv[0]).blob(kv[1])).finish()


# -- validation ------------------------------------------------------------------------
def _next_roster(
    state: GroupState | None,
    commit: Commit,
    charter: Charter,
    *,
    now: int,
    revoked: Container[bytes],
) -> tuple[RosterEntry, ...]:
    """Apply the commit's proposals to the roster, enforcing every charter rule."""
    roster = {e.device_id: e for e in state.roster} if state else {}
    committer_org = _committer_org(state, commit)
    if state is None:
        charter.check_may_create_area(committer_org)
    elif roster[commit.committer].is_revoked(revoked):
        raise CertificateError(f"committer {commit.committer!r} has been revoked")
    charter.check_may_read(committer_org, commit.area)
    if len(set(commit.removes)) != len(commit.removes):
        raise CommitError("commit removes a device twice")
    if set(commit.removes) & {p.device_id for p in commit.adds}:
        raise CommitError("a commit may not remove and add the same device")
    for device_id in commit.removes:
        entry = roster.pop(device_id, None)
        if entry is None:
            raise CommitError(f"commit removes {device_id!r}, which is not a member")
        charter.check_may_remove(committer_org, entry.organisation_id)
    if commit.update is not None:
        _check_update(commit, roster, charter, now=now, revoked=revoked)
        roster[commit.committer] = RosterEntry.from_package(commit.update)
    for package in commit.adds:
        _check_add(package, commit, roster, committer_org, charter, now=now, revoked=revoked)
        roster[package.device_id] = RosterEntry.from_package(package)
    if commit.committer not in roster:
        raise CommitError("the committer must stay a member of the area it commits to")
    for entry in roster.values():
        charter.check_may_read(entry.organisation_id, commit.area)
        if entry.is_revoked(revoked):
            raise CommitError(f"device {entry.device_id!r} is revoked and must be removed")
    _check_service_accounts(roster.values())
    return tuple(roster[d] for d in sorted(roster))


def _committer_org(state: GroupState | None, commit: Commit) -> str:
    if state is not None:
        entry = state.member(commit.committer)
        if entry is None:
            raise PolicyError(f"device {commit.committer!r} is not a member and may not commit")
        return entry.organisation_id
    creator = [p for p in commit.adds if p.device_id == commit.committer]
    if not creator:
        raise CommitError("an area's first commit must add its creator")
    return creator[0].device_cert.organisation_id


def _check_add(
    package: KeyPackage,
    commit: Commit,
    roster: dict[str, RosterEntry],
    committer_org: str,
    charter: Charter,
    *,
    now: int,
    revoked: Container[bytes],
) -> None:
    if package.area != commit.area:
        raise CommitError(f"key package of {package.device_id!r} is for another area")
    if package.device_id in roster:
        raise CommitError(f"device {package.device_id!r} is already a member")
    package.verify(charter, now=now, revoked=revoked)
    charter.check_may_admit(committer_org, package.device_cert.organisation_id, commit.area)


def _check_update(
    commit: Commit,
    roster: dict[str, RosterEntry],
    charter: Charter,
    *,
    now: int,
    revoked: Container[bytes],
) -> None:
    update = commit.update
    assert update is not None
    current = roster.get(commit.committer)
    if current is None or update.device_id != commit.committer:
        raise CommitError("a device may update only its own keys")
    cert = update.device_cert
    same = (cert.organisation_id, cert.user_id, cert.user_kind)
    if same != (current.organisation_id, current.user_id, current.user_kind):
        raise CommitError("a key update must keep the device's organisation and user")
    if update.area != commit.area:
        raise CommitError("a key update must be for the area it is committed to")
    update.verify(charter, now=now, revoked=revoked)


def _check_service_accounts(roster: Iterable[RosterEntry]) -> None:
    seen: set[tuple[str, str]] = set()
    for entry in roster:
        if entry.user_kind != "service":
            continue
        key = (entry.organisation_id, entry.user_id)
        if key in seen:
            raise CommitError(f"service account {entry.user_id!r} may have only one device")
        seen.add(key)


def _check_frame(state: GroupState | None, commit: Commit, charter: Charter, *, now: int) -> None:
    expected_epoch = 0 if state is None else state.epoch + 1
    if commit.epoch != expected_epoch:
        raise EpochError(f"commit for epoch {commit.epoch}; expected epoch {expected_epoch}")
    if commit.created_at > now + MAX_CLOCK_SKEW:
        raise CommitError("commit is dated in the future")
    if state is not None and commit.created_at < state.created_at:
        raise CommitError("commit is dated before the epoch it follows")
    if charter.operation_id != commit.operation_id:
        raise CommitError("commit belongs to another operation")
    if commit.charter_hash != charter.hash:
        raise CommitError("commit was made under another charter version")
    if state is None:
        charter.area(commit.area)
        if commit.previous_state_hash != _NO_STATE or commit.removes or commit.update:
            raise CommitError("an area's first commit may only add devices")
        return
    same = (state.instance_id, state.operation_id, state.area)
    if (commit.instance_id, commit.operation_id, commit.area) != same:
        raise CommitError("commit belongs to another area")
    if not hmac.compare_digest(commit.previous_state_hash, state.hash):
        raise CommitError("commit does not follow the current state")


def _committer_key(state: GroupState | None, commit: Commit) -> VerifyKey:
    if state is not None:
        entry = state.member(commit.committer)
        if entry is None:
            raise PolicyError(f"device {commit.committer!r} is not a member and may not commit")
        return entry.signing_key
    creator = next((p for p in commit.adds if p.device_id == commit.committer), None)
    if creator is None:
        raise CommitError("an area's first commit must add its creator")
    return creator.device_cert.signing_key


def apply_commit(
    state: GroupState | None,
    commit: Commit,
    charter: Charter,
    *,
    now: int,
    revoked: Container[bytes] = frozenset(),
    instance_id: str | None = None,
) -> GroupState:
    """Validate ``commit`` against ``state`` (``None`` for an area's creation) and the current
    ``charter``; return the next state or raise a :class:`CryptoError`.

    For a creation, pass the ``instance_id`` the area must belong to. Certificates are checked
    at the commit's own date, which may not precede the previous commit's nor lie more than
    :data:`MAX_CLOCK_SKEW` seconds after ``now``, so members who sync late agree with those
    who were online. ``revoked`` holds key ids from verified revocations.
    """
    _check_frame(state, commit, charter, now=now)
    if state is None and commit.instance_id != instance_id:
        raise CommitError("commit belongs to another instance")
    _committer_key(state, commit).verify(commit.signature, commit.to_be_signed(), what="commit")
    roster = _next_roster(state, commit, charter, now=commit.created_at, revoked=revoked)
    _check_recipients(state, commit, charter, roster)
    new_state = GroupState(
        commit.instance_id, commit.operation_id, commit.area, commit.epoch, roster,
        charter.hash, state.hash if state else _NO_STATE, commit.created_at,
    )  # fmt: skip
    if not hmac.compare_digest(new_state.roster_hash, commit.roster_hash):
        raise CommitError("commit's roster hash does not match its proposals")
    return new_state


def _check_recipients(
    state: GroupState | None, commit: Commit, charter: Charter, roster: tuple[RosterEntry, ...]
) -> None:
    if [s.device_id for s in commit.sealed] != [e.device_id for e in roster]:
        raise CommitError("the epoch secret must be sealed to every member, once, in order")
    newcomers = {p.device_id for p in commit.adds}
    history_ids = [s.device_id for s in commit.history]
    if len(set(history_ids)) != len(history_ids) or not set(history_ids) <= newcomers:
        raise CommitError("history may only be sealed to the devices this commit adds")
    if history_ids and charter.area(commit.area).history != "shared":
        raise CommitError(f"area {commit.area!r} does not share history with newcomers")


# -- building commits ------------------------------------------------------------------
def create_area(
    charter: Charter,
    creator: DeviceIdentity,
    *,
    instance_id: str,
    area: str,
    now: int,
    adds: Iterable[KeyPackage] = (),
    revoked: Container[bytes] = frozenset(),
    random: Callable[[int], bytes] = os.urandom,
) -> tuple[Commit, GroupState, bytes]:
    """Create ``area`` at epoch 0 with its coordinator creator (and optional first members)."""
    own = KeyPackage.create(creator, operation_id=charter.operation_id, area=area, now=now)
    draft = _draft(instance_id, charter, area, 0, _NO_STATE, creator, (own, *adds), (), None, now)
    return _finish(
        None, draft, charter, creator, now=now, history={}, random=random, revoked=revoked
    )


def create_commit(
    state: GroupState,
    charter: Charter,
    committer: DeviceIdentity,
    *,
    now: int,
    adds: Iterable[KeyPackage] = (),
    removes: Iterable[str] = (),
    update: DeviceIdentity | None = None,
    history: Mapping[int, bytes] | None = None,
    revoked: Container[bytes] = frozenset(),
    random: Callable[[int], bytes] = os.urandom,
) -> tuple[Commit, GroupState, bytes]:
    """Build, seal and sign the commit to epoch ``state.epoch + 1``.

    ``update`` is the committer's new identity (new keys, same device id) for a key update.
    ``history`` maps past epochs to their secrets, sealed to newcomers in ``shared`` areas.
    Returns the commit, the state it leads to and the new epoch secret.
    """
    package = None
    if update is not None:
        package = KeyPackage.create(
            update, operation_id=state.operation_id, area=state.area, now=now
        )
    draft = _draft(
        state.instance_id, charter, state.area, state.epoch + 1, state.hash, committer,
        tuple(adds), tuple(removes), package, now,
    )  # fmt: skip
    shared = charter.area(state.area).history == "shared"
    return _finish(
        state, draft, charter, committer, now=now, revoked=revoked,
        history=dict(history or {}) if shared else {}, random=random,
    )  # fmt: skip


def _draft(
    instance_id: str,
    charter: Charter,
    area: str,
    epoch: int,
    previous: bytes,
    committer: DeviceIdentity,
    adds: tuple[KeyPackage, ...],
    removes: tuple[str, ...],
    update: KeyPackage | None,
    now: int,
) -> Commit:
    return Commit(
        instance_id, charter.operation_id, area, epoch, previous, charter.hash,
        committer.device_id, adds, removes, update, b"", b"", (), (), now,
    )  # fmt: skip


def _finish(
    state: GroupState | None,
    draft: Commit,
    charter: Charter,
    committer: DeviceIdentity,
    *,
    now: int,
    history: dict[int, bytes],
    random: Callable[[int], bytes],
    revoked: Container[bytes] = frozenset(),
) -> tuple[Commit, GroupState, bytes]:
    _check_frame(state, draft, charter, now=now)
    roster = _next_roster(state, draft, charter, now=now, revoked=revoked)
    secret = random(32)
    draft = replace(
        draft,
        roster_hash=_roster_hash(roster),
        confirmation=_confirmation(secret, draft),
    )
    sealed = tuple(
        SealedSecret(e.device_id, e.hpke_key.seal(secret, _seal_info(_EPOCH_INFO, draft, e)))
        for e in roster
    )
    bundle = _encode_history(history)
    newcomers = {p.device_id for p in draft.adds}
    sealed_history = tuple(
        SealedSecret(e.device_id, e.hpke_key.seal(bundle, _seal_info(_HISTORY_INFO, draft, e)))
        for e in roster
        if history and e.device_id in newcomers and e.device_id != committer.device_id
    )
    draft = replace(draft, sealed=sealed, history=sealed_history)
    commit = replace(draft, signature=committer.signing_key.sign(draft.to_be_signed()))
    new_state = GroupState(
        commit.instance_id, commit.operation_id, commit.area, commit.epoch, roster,
        charter.hash, state.hash if state else _NO_STATE, commit.created_at,
    )  # fmt: skip
    return commit, new_state, secret


# -- receiving secrets -----------------------------------------------------------------
def _own_entry(new_state: GroupState, identity: DeviceIdentity) -> RosterEntry:
    entry = new_state.member(identity.device_id)
    if entry is None or entry.hpke_key != identity.hpke_key.public_key:
        raise CommitError(f"device {identity.device_id!r} is not a member of this epoch")
    return entry


def open_epoch_secret(commit: Commit, new_state: GroupState, identity: DeviceIdentity) -> bytes:
    """The epoch secret sealed to ``identity`` in a commit already validated into ``new_state``.

    Checks the commit's confirmation, so every member is sure to hold the same secret.
    """
    entry = _own_entry(new_state, identity)
    sealed = next((s for s in commit.sealed if s.device_id == entry.device_id), None)
    if sealed is None:
        raise CommitError("no epoch secret is sealed to this device")
    secret = identity.hpke_key.open(sealed.ciphertext, _seal_info(_EPOCH_INFO, commit, entry))
    expected = _confirmation(secret, commit)
    if len(secret) != 32 or not hmac.compare_digest(expected, commit.confirmation):
        raise CommitError("the sealed epoch secret does not match the commit's confirmation")
    return secret


def open_history(
    commit: Commit, new_state: GroupState, identity: DeviceIdentity
) -> dict[int, bytes]:
    """Past epoch secrets sealed to a newcomer ``identity`` (empty when there are none)."""
    entry = _own_entry(new_state, identity)
    sealed = next((s for s in commit.history if s.device_id == entry.device_id), None)
    if sealed is None:
        return {}
    data = identity.hpke_key.open(sealed.ciphertext, _seal_info(_HISTORY_INFO, commit, entry))

    def pair(r: Reader) -> tuple[int, bytes]:
        return r.u64("epoch"), r.blob(exact=32, field="secret")

    pairs = decode_all(data, _HISTORY_INFO, "history", lambda r: r.list(pair, field="history"))
    if any(epoch >= commit.epoch for epoch, _ in pairs):
        raise DecryptionError("history names an epoch that is not in the past")
    return dict(pairs)
