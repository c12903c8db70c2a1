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

from opseal.crypto.certs import Certificate, issue_user_certificate
from opseal.crypto.charter import Charter
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import DeviceIdentity, KeyPackage, create_area, create_commit
from opseal.crypto.keys import SigningKey, VerifyKey

from .errors import ClientError, WrongEpochError
from .ports import Charters, Clock, MemberStates, Resync
from .session import Session
from .store import Store

__all__ = ["YEAR", "Admission", "certify_user_key"]

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
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._clock = instance_id, clock
        self._charters, self._states, self._resync = charters, states, resync

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
            charter, self._identity, instance_id=self._instance_id, area=area, now=self._clock()
        )
        await self._session.api.post_commit(operation_id, area, commit.to_bytes())
        with self._store.transaction():
            self._store.add_state(operation_id, area, 0, state.to_bytes())
            self._store.add_secret(operation_id, area, 0, secret)

    async def join(self, operation_id: str, coordinator_root_key_id: bytes) -> list[str]:
        """Accept an invitation: pin the coordinator root, verify the charter, and ask to join
        every area this organisation's role may read. Returns those areas."""
        charter = await self._charters.pin(operation_id, coordinator_root_key_id)
        role = charter.role_of(self._identity.organisation_id)
        areas = [a.name for a in charter.areas if charter.may_read(role, a.name)]
        for area in areas:
            if self._store.latest_state(operation_id, area) is None:
                package = KeyPackage.create(
                    self._identity, operation_id=operation_id, area=area, now=self._clock()
                )
                await self._session.api.post_key_package(operation_id, area, package.to_bytes())
        return areas

    async def admit(self, op: str | None = None) -> list[str]:
        """Admit pending devices that the charter allows this device to admit; returns them."""
        admitted: list[str] = []
        await self._resync()
        for o, area in self._store.areas():
            if op is not None and o != op:
                continue
            admitted += await self._admit_area(o, area)
        return admitted

    async def _admit_area(self, op: str, area: str) -> list[str]:
        try:
            state, _ = self._states.current(op, area)
        except ClientError:
            return []
        charter = await self._charters.charter(op)
        packages = []
        for raw in await self._session.api.key_packages(op, area):
            try:
                package = KeyPackage.from_bytes(raw)
                package.verify(charter, now=self._clock(), revoked=frozenset())
                charter.check_may_admit(
                    self._identity.organisation_id, package.device_cert.organisation_id, area
                )
            except CryptoError:
                continue  # not ours to admit, or not admissible: others decide
            if package.area == area and state.member(package.device_id) is None:
                packages.append(package)
        if not packages:
            return []
        history = self._store.secrets(op, area) if charter.area(area).history == "shared" else None
        commit, new_state, secret = create_commit(
            state, charter, self._identity, now=self._clock(), adds=packages, history=history
        )
        try:
            await self._session.api.post_commit(op, area, commit.to_bytes())
        except WrongEpochError:
            return []  # someone else committed first; the next round sees their state
        with self._store.transaction():
            self._store.add_state(op, area, commit.epoch, new_state.to_bytes())
            self._store.add_secret(op, area, commit.epoch, secret)
        return [p.device_id for p in packages]

    async def admit_watch(self, interval: float = 5.0, rounds: int | None = None) -> None:
        done = 0
        while rounds is None or done < rounds:
            await self.admit()
            done += 1
            await asyncio.sleep(interval)
