"""``Client``: a device's view of OpSeal, verified end to end.

It never takes the server's word for membership or keys: every charter version is verified
from the coordinator root pinned at join time, every commit is validated with the crypto core
before its epoch secret is used, and every message is checked (context, sender in that
epoch's roster, signature, post rights, decryption, replay) before it is stored as genuine.
Anything refused is recorded as a warning and kept out of what :meth:`read` returns.

Submissions go through the outbox: sealed, written to the local store, then sent and retried
until the server confirms them; message ids make retries idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opseal.crypto.attachments import FileMeta
from opseal.crypto.certs import Certificate, issue_user_certificate
from opseal.crypto.charter import Charter, verify_charter_chain, verify_successor
from opseal.crypto.encoding import b64d
from opseal.crypto.envelope import Envelope, Header, open_envelope, seal
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import (
    Commit,
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
    open_epoch_secret,
    open_history,
)
from opseal.crypto.keys import KdfParams, SigningKey, VerifyKey
from opseal.crypto.merkle import Checkpoint
from opseal.crypto.statements import Receipt

from . import attachments, audit, content, release
from .api import ApiClient
from .errors import (
    ApiError,
    ClientError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    WrongEpochError,
    error_for,
)
from .profile import Profile, ProfileInfo, check_passphrase
from .store import OutboxItem, Store, StoredMessage

__all__ = ["Client", "IntegrityWarning", "SyncReport", "check_server_url", "root_key_id"]

BATCH = 500
YEAR = 365 * 86400


class IntegrityWarning(ClientError):
    """Something the server handed over failed verification (also stored as a warning)."""


@dataclass
class SyncReport:
    """What one :meth:`Client.sync` saw."""

    entries: int = 0
    messages: int = 0
    commits: int = 0
    key_packages: int = 0
    refused: int = 0


def check_server_url(url: str, *, allow_http: bool = False) -> None:
    """HTTPS everywhere; plain HTTP only to loopback, or when explicitly allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and (loopback or allow_http):
        return
    raise ClientError(
        f"refusing {url}: use https:// (plain http only to loopback or with --allow-http)"
    )


def _certify_user(
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


def _ssl_context(info: ProfileInfo) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=info.ca_bundle) if info.ca_bundle else None


class Client:
    """A logged-in device with its verified local store. Use ``async with``."""

    def __init__(
        self,
        profile: Profile,
        info: ProfileInfo,
        identity: DeviceIdentity,
        store: Store,
        api: ApiClient,
    ) -> None:
        self.profile, self.info, self.identity, self.store, self.api = (
            profile,
            info,
            identity,
            store,
            api,
        )
        self._charters: dict[str, Charter] = {}
        self._tracker = store.load_tracker()

    # -- opening -------------------------------------------------------------------------
    @classmethod
    async def open(cls, profile: Profile, passphrase: str, *, login: bool = True) -> Client:
        info = profile.info()
        check_server_url(info.server, allow_http=info.allow_http)
        identity, store_key = profile.load_device(passphrase)
        store = Store(profile.path / "state.db", store_key)
        api = await ApiClient(info.server, ssl_context=_ssl_context(info)).__aenter__()
        client = cls(profile, info, identity, store, api)
        if login:
            try:
                await client.login()
            except BaseException:
                await client.close()
                raise
        return client

    async def login(self) -> None:
        await self.api.login(
            self.info.instance_id, self.identity.device_id, self.identity.signing_key
        )

    async def close(self) -> None:
        self.store.save_tracker(self._tracker)
        await self.api.close()
        self.store.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    @property
    def org_id(self) -> str:
        return self.identity.organisation_id

    def now(self) -> int:
        return int(time.time())

    # -- onboarding ----------------------------------------------------------------------
    @classmethod
    async def enrol(
        cls,
        profile: Profile,
        *,
        server: str,
        code: str,
        passphrase: str,
        root: SigningKey,
        org_id: str,
        user_id: str,
        device_id: str,
        user_kind: str = "person",
        name: str = "",
        ca_bundle: str = "",
        allow_http: bool = False,
        params: KdfParams | None = None,
    ) -> Client:
        """Enrol this device with a one-time code: the organisation root (held by the focal
        point) certifies a new user identity key, which certifies this device."""
        check_server_url(server, allow_http=allow_http)
        check_passphrase(passphrase, "device")  # before the one-time code is spent
        now = int(time.time())
        user_key = SigningKey.generate()
        user_cert = _certify_user(root, org_id, user_id, user_kind, name, user_key.verify_key, now)
        identity = DeviceIdentity.generate(
            user_key,
            user_cert,
            device_id=device_id,
            name=device_id,
            issued_at=now - 60,
            expires_at=now + YEAR,
        )
        info = ProfileInfo(
            server=server,
            org_id=org_id,
            user_id=user_id,
            user_kind=user_kind,
            device_id=device_id,
            ca_bundle=ca_bundle,
            allow_http=allow_http,
        )
        async with ApiClient(server, ssl_context=_ssl_context(info)) as api:
            described = await api.instance()
            await api.enrol(
                code, user_cert.to_bytes(), identity.device_cert.to_bytes(), root.verify_key.raw
            )
        info.instance_id, info.log_key = described["instance_id"], described["log_key"]
        store_key = os.urandom(32)
        profile.save_info(info)
        profile.save_user(user_key, user_cert, passphrase, params)
        profile.save_device(identity, store_key, passphrase, params)
        return await cls.open(profile, passphrase)

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
        now = self.now()
        cert = _certify_user(root, self.org_id, user_id, user_kind, name, identity_key, now)
        await self.api.register_user(self.org_id, cert.to_bytes())
        return cert

    # -- charters ------------------------------------------------------------------------
    async def pin(self, operation_id: str, coordinator_root_key_id: bytes) -> Charter:
        """Pin the coordinator organisation's root (from the invitation) and verify the
        charter from it."""
        self.store.set_pin(operation_id, coordinator_root_key_id)
        return await self.charter(operation_id, refresh=True)

    async def charter(self, operation_id: str, *, refresh: bool = False) -> Charter:
        """The latest charter version, verified from the pinned root."""
        if operation_id in self._charters and not refresh:
            return self._charters[operation_id]
        pinned = self.store.pin(operation_id)
        if pinned is None:
            raise ClientError(
                f"operation {operation_id!r} is not pinned: run `opseal op join` "
                "with the coordinator's fingerprint first"
            )
        known = [Charter.from_bytes(b) for b in self.store.charters(operation_id)]
        served = [Charter.from_bytes(b) for b in await self.api.charter_versions(operation_id)]
        try:
            if not known:
                verify_charter_chain(served, pinned_root_key_id=pinned, now=self.now())
                chain = served
            else:
                chain = known + [c for c in served if c.version > known[-1].version]
                for prev, new in zip(chain[len(known) - 1 :], chain[len(known) :], strict=False):
                    verify_successor(prev, new, now=self.now())
                for mine, theirs in zip(known, served, strict=False):
                    if mine.hash != theirs.hash:
                        raise CryptoError(f"charter version {mine.version} was rewritten")
        except CryptoError as exc:
            self.store.warn(operation_id, "", None, "charter-refused", str(exc))
            raise IntegrityWarning(f"charter of {operation_id!r} refused: {exc}") from exc
        for c in chain:
            self.store.add_charter(operation_id, c.version, c.to_bytes())
        self._charters[operation_id] = chain[-1]
        return chain[-1]

    async def create_operation(
        self, draft: Charter, user_key: SigningKey, retention_days: int = 365
    ) -> Charter:
        """As a coordinator: sign charter version 1, publish it and create every area."""
        user_cert = self.identity.user_cert
        charter = draft.signed(user_key, user_cert)
        await self.api.create_operation(charter.to_bytes(), retention_days)
        root = next(m.root_key for m in charter.members if m.organisation_id == self.org_id)
        await self.pin(charter.operation_id, root.key_id)
        for area in charter.areas:
            await self.create_area(charter.operation_id, area.name)
        return charter

    async def create_area(self, operation_id: str, area: str) -> None:
        charter = await self.charter(operation_id)
        commit, state, secret = create_area(
            charter, self.identity, instance_id=self.info.instance_id, area=area, now=self.now()
        )
        await self.api.post_commit(operation_id, area, commit.to_bytes())
        with self.store.transaction():
            self.store.add_state(operation_id, area, 0, state.to_bytes())
            self.store.add_secret(operation_id, area, 0, secret)

    async def join(self, operation_id: str, coordinator_root_key_id: bytes) -> list[str]:
        """Accept an invitation: pin the coordinator root, verify the charter, and ask to join
        every area this organisation's role may read. Returns those areas."""
        charter = await self.pin(operation_id, coordinator_root_key_id)
        role = charter.role_of(self.org_id)
        areas = [a.name for a in charter.areas if charter.may_read(role, a.name)]
        for area in areas:
            if self.store.latest_state(operation_id, area) is None:
                package = KeyPackage.create(
                    self.identity, operation_id=operation_id, area=area, now=self.now()
                )
                await self.api.post_key_package(operation_id, area, package.to_bytes())
        return areas

    # -- sync and verification -----------------------------------------------------------
    async def sync(self) -> SyncReport:
        """Fetch everything new in this device's areas and verify it."""
        report = SyncReport()
        cursor = (self.store.get("sync-cursor") or b"").decode()
        while True:
            page = await self.api.sync(cursor, limit=1000)
            try:
                # One local transaction per page: verified entries, positions, the cursor and
                # the replay tracker are stored together, or not at all.
                with self.store.transaction():
                    for entry in page["events"]:
                        await self.ingest(entry, report)
                    cursor = page["cursor"]
                    self.store.put("sync-cursor", cursor.encode())
                    self.store.save_tracker(self._tracker)
            except BaseException:
                self._tracker = self.store.load_tracker()  # forget what was rolled back
                raise
            if not page["more"]:
                return report

    async def ingest(self, entry: dict[str, Any], report: SyncReport | None = None) -> None:
        """Verify one area entry and record it (or a warning) in the local store."""
        report = report or SyncReport()
        op, area, seq = entry["operation_id"], entry["area"], entry["seq"]
        position = self.store.position(op, area)
        if seq <= position:
            return
        if seq != position + 1:
            self.store.warn(
                op,
                area,
                seq,
                "gap",
                f"the server skipped entries {position + 1}..{seq - 1} of {area}",
            )
        report.entries += 1
        body = b64d(entry["body"])
        try:
            if entry["kind"] == "commit":
                await self._take_commit(op, area, body)
                report.commits += 1
            elif entry["kind"] == "message":
                self._take_message(op, area, seq, body, await self.charter(op))
                report.messages += 1
            elif entry["kind"] == "key-package":
                await self._take_key_package(op, area, body)
                report.key_packages += 1
        except (CryptoError, IntegrityWarning) as exc:
            report.refused += 1
            self.store.warn(op, area, seq, f"{entry['kind']}-refused", str(exc))
        self.store.set_position(op, area, seq)

    async def _take_commit(self, op: str, area: str, body: bytes) -> None:
        commit = Commit.from_bytes(body)
        charter = await self.charter(op)
        if commit.charter_hash != charter.hash:
            charter = await self.charter(op, refresh=True)
        latest = self.store.latest_state(op, area)
        state = GroupState.from_bytes(latest[1]) if latest else None
        reached = self._sequence_epoch(op, area)
        if (
            state is not None
            and commit.epoch <= state.epoch
            and reached in (None, commit.epoch - 1)  # served at its place, not replayed later
            and self._is_own(op, area, commit)
        ):
            self.store.put(f"sequence-epoch/{op}/{area}", str(commit.epoch).encode())
            return  # a commit this device made and applied when it posted it
        new_state = apply_commit(
            state, commit, charter, now=self.now(), instance_id=self.info.instance_id
        )
        with self.store.transaction():
            self.store.add_state(op, area, commit.epoch, new_state.to_bytes())
            self.store.put(f"sequence-epoch/{op}/{area}", str(commit.epoch).encode())
            if new_state.member(self.device_id) is not None:
                secret = open_epoch_secret(commit, new_state, self.identity)
                self.store.add_secret(op, area, commit.epoch, secret)
                for epoch, past in open_history(commit, new_state, self.identity).items():
                    self.store.add_secret(op, area, epoch, past)
        self._release_held(op, area, charter)

    def _release_held(self, op: str, area: str, charter: Charter) -> None:
        """Open messages held for want of their epoch secret, now that history may have
        brought it. Each was already checked against its place in the sequence."""
        for seq, epoch, body in self.store.held(op, area):
            if self.store.secret(op, area, epoch) is None:
                continue
            try:
                self._open_message(op, area, seq, Envelope.from_bytes(body), charter)
            except (CryptoError, IntegrityWarning) as exc:
                self.store.warn(op, area, seq, "message-refused", str(exc))
            self.store.release(op, area, seq)

    def _is_own(self, op: str, area: str, commit: Commit) -> bool:
        raw = self.store.state(op, area, commit.epoch)
        if raw is None or commit.committer != self.device_id:
            return False
        mine = GroupState.from_bytes(raw)
        same = (mine.previous_state_hash, mine.roster_hash, mine.charter_hash)
        return same == (commit.previous_state_hash, commit.roster_hash, commit.charter_hash)

    def _sequence_epoch(self, op: str, area: str) -> int | None:
        """The epoch of the last commit accepted in the area's sequence: the server stores each
        message after its epoch's commit and before the next, so it is the only epoch the
        area's next messages may carry (``None`` before the first commit)."""
        raw = self.store.get(f"sequence-epoch/{op}/{area}")
        return None if raw is None else int(raw)

    async def _take_key_package(self, op: str, area: str, body: bytes) -> None:
        """Check a join request as an admitting client would, so that a forged device or a
        substituted key is reported rather than silently skipped."""
        package = KeyPackage.from_bytes(body)
        if (package.operation_id, package.area) != (op, area):
            raise IntegrityWarning(
                f"key package for {package.operation_id}/{package.area} served in {op}/{area}"
            )
        try:
            package.verify(await self.charter(op), now=self.now(), revoked=frozenset())
        except CryptoError:  # the cached charter may predate the device's organisation
            charter = await self.charter(op, refresh=True)
            package.verify(charter, now=self.now(), revoked=frozenset())

    def _take_message(self, op: str, area: str, seq: int, body: bytes, charter: Charter) -> None:
        envelope = Envelope.from_bytes(body)
        header = envelope.header
        if (header.operation_id, header.area) != (op, area):
            raise IntegrityWarning(
                f"message for {header.operation_id}/{header.area} served in {op}/{area}"
            )
        current = self._sequence_epoch(op, area)
        if current is not None and header.epoch != current:
            raise IntegrityWarning(
                f"message of epoch {header.epoch} served while {area} is at epoch {current}"
            )
        if self.store.state(op, area, header.epoch) is None:
            raise IntegrityWarning(f"no verified state for epoch {header.epoch} of {area}")
        if self.store.secret(op, area, header.epoch) is None:
            # Posted before this device was admitted: a 'shared' area's history may bring the
            # key with the admitting commit; until then the message waits, unread.
            self.store.hold(op, area, seq, header.epoch, body)
            return
        self._open_message(op, area, seq, envelope, charter)

    def _open_message(
        self, op: str, area: str, seq: int, envelope: Envelope, charter: Charter
    ) -> None:
        header = envelope.header
        raw_state = self.store.state(op, area, header.epoch)
        secret = self.store.secret(op, area, header.epoch)
        if raw_state is None or secret is None:
            raise IntegrityWarning(f"no verified key for epoch {header.epoch} of {area}")
        state = GroupState.from_bytes(raw_state)
        plaintext = open_envelope(
            envelope, state=state, epoch_secret=secret, charter=charter, tracker=self._tracker
        )
        sender = state.member(header.sender)
        assert sender is not None
        self.store.add_message(
            StoredMessage(
                op,
                area,
                seq,
                str(header.message_id),
                header.sender,
                sender.organisation_id,
                header.epoch,
                header.content_type,
                header.handling,
                header.requires_ack,
                header.client_time_ms,
                plaintext,
            )
        )

    def gaps(self, op: str, area: str) -> dict[str, list[int]]:
        """Per sender, counters skipped and not yet arrived: possibly missing messages."""
        out = {}
        for o, a, sender, _highest, missing in self._tracker:
            if (o, a) == (op, area) and missing:
                out[sender] = missing
        return out

    def warnings(self, since_id: int = 0) -> list[tuple[int, str, str, int | None, str, str]]:
        return self.store.warnings(since_id)

    def read(
        self, op: str, area: str | None = None, *, after: int = 0, content_type: str | None = None
    ) -> list[StoredMessage]:
        """Verified messages (call :meth:`sync` first for the newest)."""
        return self.store.messages(op, area, after=after, content_type=content_type)

    # -- posting through the outbox --------------------------------------------------------
    def _current(self, op: str, area: str) -> tuple[GroupState, bytes]:
        latest = self.store.latest_state(op, area)
        if latest is None:
            raise ClientError(f"this device is not a member of {op}/{area} yet")
        state = GroupState.from_bytes(latest[1])
        secret = self.store.secret(op, area, state.epoch)
        if secret is None or state.member(self.device_id) is None:
            raise ClientError(f"this device is not a member of {op}/{area} (epoch {state.epoch})")
        return state, secret

    def _seal(
        self,
        state: GroupState,
        secret: bytes,
        counter: int,
        message_id: uuid.UUID,
        content_type: str,
        plaintext: bytes,
        handling: str,
        requires_ack: bool,
    ) -> Envelope:
        header = Header(
            self.info.instance_id,
            state.operation_id,
            state.area,
            state.epoch,
            self.device_id,
            counter,
            message_id,
            content_type,
            handling,
            requires_ack,
            int(time.time() * 1000),
        )
        return seal(header, plaintext, secret, self.identity.signing_key)

    def enqueue(
        self,
        op: str,
        area: str,
        items: Sequence[tuple[str, Any]],
        *,
        handling: str = "H0",
        requires_ack: bool = False,
        message_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[str]:
        """Seal ``(content_type, payload)`` items and write them to the outbox (not sent yet)."""
        state, secret = self._current(op, area)
        ids = list(message_ids) if message_ids is not None else [uuid.uuid4() for _ in items]
        with self.store.transaction():
            first = self.store.take_counters(op, area, len(items))
            queued = []
            for n, ((content_type, payload), message_id) in enumerate(zip(items, ids, strict=True)):
                plaintext = json.dumps(payload, sort_keys=True).encode()
                envelope = self._seal(
                    state,
                    secret,
                    first + n,
                    message_id,
                    content_type,
                    plaintext,
                    handling,
                    requires_ack,
                )
                queued.append(
                    OutboxItem(
                        str(message_id),
                        op,
                        area,
                        envelope.to_bytes(),
                        plaintext,
                        content_type,
                        handling,
                        requires_ack,
                        0,
                    )
                )
            self.store.enqueue(queued)
        return [str(i) for i in ids]

    async def post(
        self,
        op: str,
        area: str,
        content_type: str,
        payload: Any,
        *,
        handling: str = "H0",
        requires_ack: bool = False,
    ) -> str:
        """Seal, queue and send one message; returns its message id."""
        [message_id] = self.enqueue(
            op, area, [(content_type, payload)], handling=handling, requires_ack=requires_ack
        )
        await self.flush()
        return message_id

    async def flush(self, *, deadline: float = 120.0, progress: Any = None) -> int:
        """Send the outbox until it is empty, retrying with backoff; returns how many were
        confirmed. A transport failure past ``deadline`` seconds leaves the rest pending."""
        sent, delay, stop = 0, 0.5, time.monotonic() + deadline
        while batch := self.store.pending(BATCH):
            by_area: dict[tuple[str, str], list[OutboxItem]] = {}
            for item in batch:
                by_area.setdefault((item.op, item.area), []).append(item)
            try:
                for (op, area), items in by_area.items():
                    sent += await self._send(op, area, items)
                    if progress is not None:
                        progress(len(items))
                delay = 0.5
            except TransportError:
                if time.monotonic() > stop:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                await self._relogin()
        return sent

    async def _relogin(self) -> None:
        with contextlib.suppress(ClientError):
            await self.login()

    async def _send(self, op: str, area: str, items: list[OutboxItem]) -> int:
        try:
            seqs = await self.api.post_batch(op, area, [i.envelope for i in items])
        except WrongEpochError:
            await self.sync()
            self._reseal(op, area, items)
            return 0
        except (RateLimitedError, UnavailableError, UnauthorizedError, ServerError) as exc:
            raise TransportError(str(exc)) from exc  # transient: retried with backoff
        except ApiError as exc:
            return self._refused(items, exc)
        with self.store.transaction():
            self.store.mark_sent([(i.message_id, s) for i, s in zip(items, seqs, strict=True)])
        return len(seqs)

    def _refused(self, items: list[OutboxItem], exc: ApiError) -> int:
        """The server refused the batch for good: set aside the envelope it names (or the
        whole batch), so the rest of the outbox is not blocked; `opseal outbox` shows it."""
        index = exc.details.get("index")
        culprits = [items[index]] if isinstance(index, int) and 0 <= index < len(items) else items
        with self.store.transaction():
            self.store.mark_refused([i.message_id for i in culprits], str(exc))
        self.store.warn(items[0].op, items[0].area, None, "submission-refused", str(exc))
        return 0

    def _reseal(self, op: str, area: str, items: list[OutboxItem]) -> None:
        """The area moved to a new epoch: seal the same messages again (same ids) for it, and
        every later pending one of the area, so counters still rise in sending order."""
        state, secret = self._current(op, area)
        with self.store.transaction():
            items = self.store.pending(1 << 30, op, area)
            first = self.store.take_counters(op, area, len(items))
            for n, item in enumerate(items):
                envelope = self._seal(
                    state,
                    secret,
                    first + n,
                    uuid.UUID(item.message_id),
                    item.content_type,
                    item.plaintext,
                    item.handling,
                    item.requires_ack,
                )
                self.store.replace_envelope(item.message_id, envelope.to_bytes())

    # -- admission -----------------------------------------------------------------------
    async def admit(self, op: str | None = None) -> list[str]:
        """Admit pending devices that the charter allows this device to admit; returns them."""
        admitted: list[str] = []
        await self.sync()
        for o, area in self.store.areas():
            if op is not None and o != op:
                continue
            admitted += await self._admit_area(o, area)
        return admitted

    async def _admit_area(self, op: str, area: str) -> list[str]:
        try:
            state, _ = self._current(op, area)
        except ClientError:
            return []
        charter = await self.charter(op)
        packages = []
        for raw in await self.api.key_packages(op, area):
            try:
                package = KeyPackage.from_bytes(raw)
                package.verify(charter, now=self.now(), revoked=frozenset())
                charter.check_may_admit(self.org_id, package.device_cert.organisation_id, area)
            except CryptoError:
                continue  # not ours to admit, or not admissible: others decide
            if package.area == area and state.member(package.device_id) is None:
                packages.append(package)
        if not packages:
            return []
        history = self.store.secrets(op, area) if charter.area(area).history == "shared" else None
        commit, new_state, secret = create_commit(
            state, charter, self.identity, now=self.now(), adds=packages, history=history
        )
        try:
            await self.api.post_commit(op, area, commit.to_bytes())
        except WrongEpochError:
            return []  # someone else committed first; the next round sees their state
        with self.store.transaction():
            self.store.add_state(op, area, commit.epoch, new_state.to_bytes())
            self.store.add_secret(op, area, commit.epoch, secret)
        return [p.device_id for p in packages]

    async def admit_watch(self, interval: float = 5.0, rounds: int | None = None) -> None:
        done = 0
        while rounds is None or done < rounds:
            await self.admit()
            done += 1
            await asyncio.sleep(interval)

    # -- receipts ------------------------------------------------------------------------
    async def ack(self, message_id: str, kind: str = "ack") -> None:
        stored = self.store.message(message_id)
        if stored is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        receipt = Receipt.create(
            self.identity.signing_key,
            instance_id=self.info.instance_id,
            operation_id=stored.op,
            area=stored.area,
            message_id=uuid.UUID(message_id),
            kind=kind,
            device_id=self.device_id,
            signed_at=self.now(),
        )
        await self.api.post_receipt(receipt.to_bytes())

    async def acks(self, message_id: str) -> dict[str, Any]:
        stored = self.store.message(message_id)
        if stored is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        return await self.api.receipts(stored.op, stored.area, message_id)

    # -- audit ---------------------------------------------------------------------------
    async def verify_audit(self) -> audit.AuditReport:
        """Verify the audit log against the pinned log key and the last checkpoint seen."""
        last_raw = self.store.get("audit-checkpoint")
        last = Checkpoint.from_bytes(last_raw) if last_raw else None
        report = await audit.verify_audit(self.api, b64d(self.info.log_key), last)
        self.store.put("audit-checkpoint", report.checkpoint.to_bytes())
        return report

    # -- content: attachments, alerts, seizures, tail --
    async def upload(
        self,
        op: str,
        area: str,
        path: str | os.PathLike[str],
        media_type: str | None = None,
        progress: attachments.Progress | None = None,
        *,
        chunk_size: int = attachments.CHUNK_SIZE,
    ) -> attachments.Attachment:
        """Encrypt a file and upload it as a blob of ``op``/``area``, resuming an interrupted
        run; put ``result.to_json()`` in the message that shares it."""
        return await attachments.upload(
            self, op, area, path, media_type, progress, chunk_size=chunk_size
        )

    async def download(
        self,
        meta: FileMeta,
        blob_id: str,
        dest_path: str | os.PathLike[str],
        progress: attachments.Progress | None = None,
        *,
        chunk_size: int = attachments.CHUNK_SIZE,
    ) -> Path:
        """Fetch a blob, check it against the signed ``meta`` and decrypt it to ``dest_path``;
        a swapped or tampered blob raises :class:`~.attachments.AttachmentRefused`."""
        return await attachments.download(
            self, meta, blob_id, dest_path, progress, chunk_size=chunk_size
        )

    async def alert(
        self,
        op: str,
        area: str,
        targets: Sequence[str],
        action: str,
        deadline: str | None = None,
        *,
        handling: str = "H0",
    ) -> str:
        """Ask member organisations ``targets`` to act (by ``deadline``, YYYY-MM-DD); returns
        the alert's message id."""
        payload = content.alert(targets, action, deadline)
        members = {m.organisation_id for m in (await self.charter(op)).members}
        unknown = [t for t in payload["targets"] if t not in members]
        if unknown:
            raise content.ContentError("targets", f"not members of {op}: {', '.join(unknown)}")
        return await self.post(op, area, "alert", payload, handling=handling)

    async def respond(
        self, op: str, area: str, alert_id: str, outcome: str, *, handling: str = "H0"
    ) -> str:
        """Answer a verified alert addressed to this organisation; returns the message id."""
        payload = content.alert_response(alert_id, outcome)
        alert = self.store.message(payload["alert_id"])
        if alert is None or alert.op != op or alert.content_type != "alert":
            raise ClientError(f"{alert_id} is not a verified alert of {op}: sync first")
        try:
            targets = content.validate("alert", alert.json())["targets"]
        except (content.ContentError, ValueError) as exc:
            raise ClientError(f"alert {alert_id} is malformed: {exc}") from exc
        if self.org_id not in targets:
            raise ClientError(
                f"alert {alert_id} is addressed to {', '.join(targets)}, not to {self.org_id}"
            )
        return await self.post(op, area, "alert-response", payload, handling=handling)

    def responses(self, alert_id: str) -> list[StoredMessage]:
        """Verified responses to an alert (call :meth:`sync` first for the newest)."""
        alert = self.store.message(alert_id)
        if alert is None:
            return []
        return [
            m
            for m in self.read(alert.op, content_type="alert-response")
            if content.field_of(m.plaintext, "alert_id") == alert.message_id
        ]

    async def post_seizures(
        self,
        op: str,
        records: Sequence[dict[str, Any]],
        area: str = "seizures",
        progress: attachments.Progress | None = None,
        *,
        handling: str = "H0",
    ) -> list[str]:
        """Submit seizure records exactly once: each gets a deterministic message id
        (:func:`~.content.record_message_id`); records this organisation already queued or
        posted are skipped, the rest go through the outbox. Returns every record's id.

        ``progress(n)`` is called with counts of records done, the skipped ones first.
        """
        payloads = self._seizure_payloads(records)
        ids = [content.record_message_id(op, p) for p in payloads]
        fresh = self._unsubmitted(payloads, ids)
        if progress is not None and len(fresh) < len(payloads):
            progress(len(payloads) - len(fresh))
        if fresh:
            self.enqueue(
                op,
                area,
                [("seizure", p) for p, _ in fresh],
                handling=handling,
                message_ids=[i for _, i in fresh],
            )
        await self.flush(progress=progress)
        return [str(i) for i in ids]

    def _seizure_payloads(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every record checked before anything is queued; the first bad one is named."""
        payloads = []
        for n, record in enumerate(records):
            try:
                payloads.append(content.seizure(record))
            except content.ContentError as exc:
                raise content.ContentError(f"records[{n}].{exc.field}", exc.reason) from exc
        return payloads

    def _unsubmitted(
        self, payloads: list[dict[str, Any]], ids: list[uuid.UUID]
    ) -> list[tuple[dict[str, Any], uuid.UUID]]:
        """Records whose id is neither in the outbox nor verified from this organisation."""
        seen = self._known_ids([str(i) for i in ids])
        fresh = []
        for payload, message_id in zip(payloads, ids, strict=True):
            if str(message_id) not in seen:
                seen.add(str(message_id))
                fresh.append((payload, message_id))
        return fresh

    def _known_ids(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.store.db.execute(
                f"SELECT message_id FROM outbox WHERE message_id IN ({marks}) "  # noqa: S608
                f"UNION SELECT message_id FROM messages WHERE org = ? AND message_id IN ({marks})",
                [*chunk, self.org_id, *chunk],
            )
            known.update(row[0] for row in rows)
        return known

    async def tail(
        self,
        handler: Callable[[StoredMessage], Any],
        *,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Follow this device's areas in real time until ``stop`` is set: every entry is
        verified through :meth:`ingest`, the sync cursor advances after each, and
        ``handler(message)`` (plain or async) sees each newly verified message. A cut
        connection is resumed from the cursor, with backoff."""
        stopper = asyncio.ensure_future((stop or asyncio.Event()).wait())
        follower = asyncio.ensure_future(self._follow(handler))
        try:
            await asyncio.wait({stopper, follower}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            follower.cancel()
            await asyncio.gather(stopper, follower, return_exceptions=True)
            self.store.save_tracker(self._tracker)
        if not follower.cancelled() and follower.exception() is not None:
            raise follower.exception()  # type: ignore[misc]

    async def _follow(self, handler: Callable[[StoredMessage], Any]) -> None:
        delay = 0.5
        while True:
            try:
                cursor = (self.store.get("sync-cursor") or b"").decode()
                async for item in self.api.stream(cursor):
                    delay = 0.5
                    await self._tail_item(item, handler)
            except (TransportError, ServerError, UnavailableError, RateLimitedError):
                pass  # a cut, a restarting server or a proxy's 5xx: reconnect after the delay
            except UnauthorizedError:
                with contextlib.suppress(TransportError):
                    await self.login()  # a revoked device stops here with the server's refusal
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _tail_item(
        self, item: dict[str, Any], handler: Callable[[StoredMessage], Any]
    ) -> None:
        kind = item.get("type")
        if kind == "error":
            raise error_for(401, item)
        if kind not in ("event", "idle") or not isinstance(item.get("cursor"), str):
            self.store.warn("", "", None, "stream-malformed", f"unexpected stream item {kind!r}")
            return
        message = await self._ingest_new(item["event"]) if kind == "event" else None
        self.store.put("sync-cursor", item["cursor"].encode())
        self.store.save_tracker(self._tracker)
        if message is not None:
            result = handler(message)
            if inspect.isawaitable(result):
                await result

    async def _ingest_new(self, entry: Any) -> StoredMessage | None:
        """Ingest one streamed entry; the message it verified, if it was a new one."""
        try:
            op, area, seq = entry["operation_id"], entry["area"], int(entry["seq"])
        except (KeyError, TypeError, ValueError):
            self.store.warn("", "", None, "stream-malformed", "a streamed entry lacks its place")
            return None
        if op not in self._charters:
            with contextlib.suppress(ClientError):
                await self.charter(op)  # so post rights are checked from the first message
        report = SyncReport()
        await self.ingest(entry, report)
        if not report.messages:
            return None
        return next((m for m in self.store.messages(op, area, after=seq - 1) if m.seq == seq), None)

    # -- release --
    async def release(self, message_id: str, to_area: str, clear: Sequence[str] = ()) -> str:
        """As a coordinator: post a sanitised copy of a verified seizure record into a
        stakeholder area (rules and sanitising in :mod:`.release`); returns the release's
        message id. Call :meth:`sync` first so that the record and any permission are known."""
        source = self.store.message(message_id)
        if source is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        charter = await self.charter(source.op)
        release.check_release(
            charter, self.org_id, source, to_area, self.read(source.op, source.area)
        )
        payload = release.payload(source, self.org_id, clear)
        return await self.post(source.op, to_area, "release", payload, handling=source.handling)


def root_key_id(fingerprint_or_key: str) -> bytes:
    """Accept a root public key (base64url) and return its key id."""
    try:
        return VerifyKey(b64d(fingerprint_or_key)).key_id
    except (CryptoError, ValueError) as exc:
        raise ClientError("expected the coordinator organisation's root key (base64url)") from exc
