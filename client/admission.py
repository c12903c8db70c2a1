"""``Admission``: users, operations, areas and the devices admitted to them (design §3, §4).

A focal point certifies users' identity keys; a coordinator creates an operation (charter
version 1 and every area's first commit); a member joins by pinning the coordinator root and
asking, with a key package, to enter every area its role may read; and a device whose
organisation the charter allows to admit turns verified key packages into a commit.

It depends on the session, the store, the device identity, a clock, verified charters
(:class:`~opseal.client.ports.Charters`), the group state
(:class:`~opseal.client.ports.MemberStates`) and a resync callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from opseal.crypto.certs import Certificate, Revocation, RevokedKeys, issue_user_certificate
from opseal.crypto.charter import Charter
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import (
    DeviceIdentity,
    GroupState,
    KeyPackage,
    RosterEntry,
    create_area,
    create_commit,
)
from opseal.crypto.keys import SigningKey, VerifyKey

from . import membership, secrecy
from .errors import ClientError, WrongEpochError
from .ports import Charters, Clock, MemberStates, Resync, Revoked
from .session import Session
from .store import Store

__all__ = ["YEAR", "Admission", "asked_key", "certify_user_key"]

YEAR = 365 * 86400


def certify_user_key(
    root: SigningKey,
    org_id: str,
    user_id: str,
    user_kind: str,
    name: str,
    identity_key: VerifyKey,
    now: int,
) -> Certificate:
    """The organisation root certifies a user's identity key for a year (a minute of skew)."""
    return issue_user_certificate(
        root,
        organisation_id=org_id,
        user_id=user_id,
        user_kind=user_kind,
        name=name or user_id,
        identity_key=identity_key,
        issued_at=now - 60,
        expires_at=now + YEAR,
    )


def asked_key(op: str, area: str) -> str:
    """The store key under which :meth:`Admission.join` notes when it asked to join."""
    return f"asked/{op}/{area}"


class Admission:
    """Certifies users, creates operations and areas, joins, and admits devices."""

    def __init__(
        self,
        session: Session,
        store: Store,
        identity: DeviceIdentity,
        instance_id: str,
        clock: Clock,
        charters: Charters,
        states: MemberStates,
        resync: Resync,
        revoked: Revoked,
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._clock = instance_id, clock
        self._charters, self._states, self._resync = charters, states, resync
        self._revoked = revoked

    async def certify_user(
        self,
        root: SigningKey,
        *,
        user_id: str,
        identity_key: VerifyKey,
        user_kind: str = "person",
        name: str = "",
    ) -> Certificate:
        """As a focal point: certify another user's identity key and register it."""
        now = self._clock()
        cert = certify_user_key(
            root, self._identity.organisation_id, user_id, user_kind, name, identity_key, now
        )
        await self._session.api.register_user(self._identity.organisation_id, cert.to_bytes())
        return cert

    async def revoke(self, root: SigningKey, subject: Certificate, reason: str = "") -> str:
        """As a focal point: sign with the organisation root a revocation of ``subject``'s key
        (a device, a user's current identity key, or one it had before a renewal) and record
        it. Returns the revoked subject."""
        statement = Revocation.issue(
            root,
            organisation_id=self._identity.organisation_id,
            subject_id=subject.subject_id,
            revoked_key=subject.signing_key,
            reason=reason,
            revoked_at=self._clock(),
        )
        answer = await self._session.api.revoke(
            self._identity.organisation_id, statement.to_bytes()
        )
        # kept with its own certificate: a server that serves it with another cannot bury it
        self._store.add_revocation(
            self._identity.organisation_id, statement.to_bytes(), subject.to_bytes(), None
        )
        return str(answer.revoked)

    async def create_operation(
        self, draft: Charter, user_key: SigningKey, retention_days: int = 365
    ) -> Charter:
        """As a coordinator: sign charter version 1, publish it and create every area."""
        user_cert = self._identity.user_cert
        charter = draft.signed(user_key, user_cert)
        await self._session.api.create_operation(charter.to_bytes(), retention_days)
        root = next(
            m.root_key
            for m in charter.members
            if m.organisation_id == self._identity.organisation_id
        )
        await self._charters.pin(charter.operation_id, root.key_id)
        for area in charter.areas:
            await self.create_area(charter.operation_id, area.name)
        return charter

    async def create_area(self, operation_id: str, area: str) -> None:
        charter = await self._charters.charter(operation_id)
        commit, state, secret = create_area(
            charter, self._identity, instance_id=self._instance_id, area=area, now=self._clock(),
            init_key=secrecy.fresh_init_key(self._store, operation_id, area, self._clock()),
        )  # fmt: skip
        await self._session.api.post_commit(operation_id, area, commit.to_bytes())
        with self._store.transaction():
            membership.note_commit(self._store, commit, self._clock())
            secrecy.after_commit(
                self._store, None, state, self._identity.device_id,
                window=secrecy.secret_window(charter, area), now=self._clock(),
            )  # fmt: skip
            self._store.add_state(operation_id, area, 0, state.to_bytes())
            self._store.add_secret(operation_id, area, 0, secret)

    async def join(self, operation_id: str, coordinator_root_key_id: bytes) -> list[str]:
        """Accept an invitation: pin the coordinator root, verify the charter, and ask to join
        every area this organisation's role may read. Returns those areas."""
        charter = await self._charters.pin(operation_id, coordinator_root_key_id)
        role = charter.role_of(self._identity.organisation_id)
        areas = [a.name for a in charter.areas if charter.may_read(role, a.name)]
        for area in areas:
            latest = self._store.latest_state(operation_id, area)
            # not yet a member, or removed since: ask (again) with a fresh, single-use package
            if (
                latest is None
                or GroupState.from_bytes(latest[1]).member(self._identity.device_id) is None
            ):
                package = KeyPackage.create(
                    self._identity, operation_id=operation_id, area=area, now=self._clock(),
                    init_key=secrecy.fresh_init_key(self._store, operation_id, area, self._clock()),
                )  # fmt: skip
                await self._session.api.post_key_package(operation_id, area, package.to_bytes())
                self._store.put(asked_key(operation_id, area), str(self._clock()).encode())
        return areas

    async def admit(self, op: str | None = None, readmit: Iterable[str] = ()) -> list[str]:
        """Admit pending devices that the charter allows this device to admit, and in the same
        commit remove every device that is revoked or whose organisation may no longer read
        the area. A device (or an organisation removed with ``remove(org=...)``) removed
        earlier is admitted again only if named in ``readmit``. Returns the admitted devices."""
        admitted: list[str] = []
        await self._resync()
        for o, area in self._store.areas():
            if op is not None and o != op:
                continue
            done = await self._commit_area(o, area, readmit=set(readmit))
            admitted += done[0] if done else []
        for o in {o for o, _ in self._store.areas() if op is None or o == op}:
            for org in readmit:  # an organisation named in readmit may be admitted again
                membership.forget_removed_org(self._store, o, org)
        return admitted

    async def remove(
        self, op: str, *, device: str | None = None, org: str | None = None
    ) -> list[str]:
        """Remove ``device``, or every device of ``org``, from each area of ``op`` this device
        belongs to (with any removal the charter or a revocation requires). Returns them."""
        if (device is None) == (org is None):
            raise ClientError("name either a device or an organisation to remove")
        await self._resync()
        removed: set[str] = set()

        def targets(entry: RosterEntry) -> bool:
            return entry.device_id == device or entry.organisation_id == org

        for o, area in self._store.areas():
            if o == op:
                done = await self._commit_area(o, area, targets=targets)
                removed |= set(done[1] if done else [])
        if org is not None:  # its other devices stay out of later admit rounds too
            charter = await self._charters.charter(op)
            membership.note_removed_org(self._store, op, org, charter.hash)
        return sorted(removed)

    async def rotate(self, op: str, area: str | None = None) -> list[str]:
        """An update commit to ``area`` (every area of ``op`` this device belongs to if None):
        a new epoch secret for every member, this device's init key replaced, and any
        removal due folded in. Returns the areas rotated."""
        await self._resync()
        rotated = []
        for o, a in self._store.areas():
            if o == op and area in (None, a) and await self._commit_area(o, a, rotate=True):
                rotated.append(a)
        return rotated

    async def rotate_due(self, period: int | None = None) -> list[tuple[str, str]]:
        """Rotate every area this device belongs to whose epoch is as old as the area's
        charter rotation period (``period`` seconds instead, if given), so members' freeze
        checks stay quiet; ``admit --watch`` calls it each round. Returns what it rotated."""
        now, done = self._clock(), []
        for op, area in self._store.areas():
            try:
                state, _ = self._states.current(op, area)
                due = period if period is not None else await self._period(op, area)
            except ClientError:
                continue
            if now - state.created_at >= due and await self._commit_area(op, area, rotate=True):
                done.append((op, area))
        return done

    async def _period(self, op: str, area: str) -> int:
        try:
            return (await self._charters.charter(op)).area(area).rotation_period
        except CryptoError as exc:  # an area the current charter no longer lists
            raise ClientError(str(exc)) from exc

    async def refresh_keys(self, period: int | None = None) -> list[tuple[str, str]]:
        """Replace this device's own init key (an update commit) in every area where it is
        ``period`` seconds old (default :data:`~opseal.client.secrecy.INIT_KEY_PERIOD`, or
        the area's charter history window if shorter), not held, or still the certificate's
        long-term key from before init keys; and forget the epoch secrets older than the
        window. Runs after every sync; a failure is recorded as a ``key-update-failed``
        warning."""
        now, done = self._clock(), []
        for op, area in self._store.areas():
            try:
                state, _ = self._states.current(op, area)
                charter = await self._charters.charter(op)
                window = secrecy.secret_window(charter, area)
            except (ClientError, CryptoError):
                continue
            secrecy.forget_old_secrets(self._store, op, area, window, now)
            age = secrecy.key_age(self._store, state, self._identity, now)
            due = secrecy.key_period(charter, area) if period is None else period
            if age is not None and age < due:
                continue
            try:
                if await self._commit_area(op, area, rotate=True):
                    done.append((op, area))
            except (ClientError, CryptoError) as exc:
                self._store.warn(op, area, None, "key-update-failed", str(exc))
        return done

    async def _commit_area(
        self,
        op: str,
        area: str,
        *,
        readmit: set[str] | None = None,
        targets: Callable[[RosterEntry], bool] | None = None,
        rotate: bool = False,
    ) -> tuple[list[str], list[str]] | None:
        """One commit to ``area``: the removals due (and ``targets``), plus the admissible
        key packages unless only removing or rotating; every commit also replaces this
        device's init key. Returns (added, removed) device ids, or None if nothing was
        committed."""
        try:
            state, _ = self._states.current(op, area)
        except ClientError:
            return None
        charter = await self._charters.charter(op)
        revoked, now = self._revoked.revoked(charter), self._clock()
        me = self._identity.organisation_id
        removes = [
            e.device_id
            for e in state.roster
            if e.device_id != self._identity.device_id
            and _may_remove(charter, me, e)
            and (_must_go(e, charter, area, revoked) or (targets is not None and targets(e)))
        ]
        packages = (
            await self._admissible(op, area, state, charter, revoked, readmit)
            if targets is None and not rotate
            else []
        )
        if not packages and not removes and not rotate:
            return None
        history = self._store.secrets(op, area) if charter.area(area).history == "shared" else None
        init_key = secrecy.fresh_init_key(self._store, op, area, now)
        try:  # sealing to hundreds of devices: off the event loop
            commit, new_state, secret = await asyncio.to_thread(
                create_commit, state, charter, self._identity, now=now, adds=packages,
                removes=removes, history=history, revoked=revoked.at(now), init_key=init_key,
            )  # fmt: skip
        except CryptoError as exc:  # e.g. a removal this organisation may not make
            self._store.warn(op, area, None, "admit-refused", str(exc))
            return None
        try:
            await self._session.api.post_commit(op, area, commit.to_bytes())
        except WrongEpochError:
            return None  # someone else committed first; the next round sees their state
        with self._store.transaction():
            self._store.add_state(op, area, commit.epoch, new_state.to_bytes())
            self._store.add_secret(op, area, commit.epoch, secret)
            membership.note_commit(self._store, commit, now)
            secrecy.after_commit(
                self._store, state, new_state, self._identity.device_id,
                window=secrecy.secret_window(charter, area), now=now,
            )  # fmt: skip
        return [p.device_id for p in packages], removes

    async def _admissible(
        self,
        op: str,
        area: str,
        state: GroupState,
        charter: Charter,
        revoked: RevokedKeys,
        readmit: set[str] | None,
    ) -> list[KeyPackage]:
        """The verified, fresh, unused key packages of devices this device may add."""
        now, out = self._clock(), {}
        removed = membership.removed(self._store, op, area) - (readmit or set())
        removed_orgs = membership.removed_orgs(self._store, op, charter.hash) - (readmit or set())
        for raw in await self._session.api.key_packages(op, area):
            try:
                package = KeyPackage.from_bytes(raw)
                package.verify(charter, now=now, revoked=revoked)
                charter.check_may_admit(
                    self._identity.organisation_id, package.device_cert.organisation_id, area
                )
            except CryptoError:
                continue  # not ours to admit, or not admissible: others decide
            if package.area != area or state.member(package.device_id) is not None:
                continue
            if package.device_id in removed or package.device_cert.organisation_id in removed_orgs:
                continue  # removed devices stay out until a coordinator re-admits them
            problem = membership.check_fresh(self._store, package, now)
            if problem is not None:
                self._store.warn(op, area, None, "key-package-refused", problem)
                continue
            out[package.device_id] = package  # the newest package of a device wins
        return list(out.values())

    async def admit_watch(self, interval: float = 5.0, rounds: int | None = None) -> None:
        """Admit (and remove) every ``interval`` seconds; a round that fails is recorded as a
        warning and the next round tries again."""
        done = 0
        while rounds is None or done < rounds:
            try:
                await self.admit()
                await self.rotate_due()
            except (ClientError, CryptoError) as exc:
                self._store.warn("", "", None, "admit-failed", str(exc))
            done += 1
            await asyncio.sleep(interval)


def _may_remove(charter: Charter, committer_org: str, entry: RosterEntry) -> bool:
    try:
        charter.check_may_remove(committer_org, entry.organisation_id)
    except CryptoError:
        return False
    return True


def _must_go(entry: RosterEntry, charter: Charter, area: str, revoked: RevokedKeys) -> bool:
    """Whether a roster device must be removed: revoked, or its organisation no longer listed
    or its role no longer reading the area."""
    if entry.is_revoked(revoked):
        return True
    try:
        return not charter.may_read(charter.role_of(entry.organisation_id), area)
    except CryptoError:
        return True
