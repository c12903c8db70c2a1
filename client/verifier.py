"""``Verifier``: the trust core of a device — charters, commits and messages (design §3 to §5).

It never takes the server's word for membership or keys: every charter version is verified
from the coordinator root pinned at join time, every commit is validated with the crypto core
before its epoch secret is used, and every message is checked (context, sender in that
epoch's roster, signature, post rights, decryption, replay) before it is stored as genuine.
Anything refused is recorded as a warning and kept out of what the store's messages hold.
A message or receipt from another branch of an epoch, a split view of the audit log and an
area frozen on an old epoch are reported by its :class:`~opseal.client.forks.ForkWatch`.

Long because: every entry kind's rules (charter, commit, key package, message, receipt) and
the order they run in share one state; split apart, each part would reach into the others'.

It depends on the :class:`~opseal.client.session.Session` (for charter versions and sync
pages), the local :class:`~opseal.client.store.Store`, the device identity and a clock; it
serves the other parts as :class:`~opseal.client.ports.Charters` and
:class:`~opseal.client.ports.MemberStates`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opseal.crypto.certs import RevokedKeys
from opseal.crypto.charter import (
    DEFAULT_ROTATION_PERIOD,
    Charter,
    verify_charter_chain,
    verify_successor,
)
from opseal.crypto.encoding import b64d
from opseal.crypto.envelope import CheckedSignature, Envelope, open_envelope
from opseal.crypto.errors import CryptoError, ForkError
from opseal.crypto.group import (
    Commit,
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    open_epoch_secret,
    open_history,
)
from opseal.crypto.signature_worker import SignatureWorker
from opseal.wire.operations import Event, SyncPage

from . import membership, secrecy
from .errors import ClientError
from .forks import ForkWatch
from .ports import Clock
from .revocations import Revocations
from .session import Session
from .signatures import CHUNK, Decoded, DecodedPage
from .store import Store, StoredMessage

__all__ = ["IntegrityWarning", "SyncReport", "Verifier"]

PAGE_SIZE = 1000
"""Entries asked for per sync page."""
WORKER_FROM = 256
"""A sync starts a :class:`~.signatures.SignatureWorker` when its first page holds at least
this many entries and more follow."""
YIELD_EVERY = 16
"""Entries verified between two turns of the event loop during a sync: the next page arrives
(some hundred kilobytes per turn) only while the loop turns."""


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


@contextlib.contextmanager
def _collector_spared(long_sync: bool) -> Iterator[None]:
    """During a long sync, the objects that were alive before it (the application's, the
    modules') are left out of the garbage collector's full collections: each one walked them
    all, ~0.2 s apiece, 1.2 of a 100k-record sync's 10.5 s of CPU (design §14). They are
    handed back afterwards; what the sync makes is collected as usual."""
    if not long_sync or gc.get_freeze_count():  # or frozen already: by the application,
        yield  # or by another sync, whose end will hand everything back
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Verifier:
    """Verifies what the server serves and records it (or a warning) in the local store."""

    def __init__(
        self,
        session: Session,
        store: Store,
        identity: DeviceIdentity,
        instance_id: str,
        clock: Clock,
        log_key: bytes = b"",
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._clock = instance_id, clock
        self._charters: dict[str, Charter] = {}
        self._tracker = store.load_tracker()
        self._signers: dict[tuple[str, str], GroupState] = {}  # see _signer
        self._hints = 0  # changes with _signers
        self.revocations = Revocations(session, store)
        self.forks = ForkWatch(session, store, identity.device_id, log_key)

    def revoked(self, charter: Charter | None = None) -> RevokedKeys:
        """The keys revoked by the revocations verified against the roots ``charter`` lists
        (without one, every verified revocation this device holds)."""
        return self.revocations.revoked(charter)

    async def refresh_revocations(self) -> None:
        """Fetch new revocations and verify them against the roots of the known charters."""
        await self.revocations.refresh()
        self.revocations.settle(self._known_charters())

    def _known_charters(self) -> list[Charter]:
        known = list(self._charters.values())
        for op in {op for op, _ in self._store.areas()} - set(self._charters):
            stored = self._store.charters(op)
            if stored:
                known.append(Charter.from_bytes(stored[-1]))
        return known

    def _rotation_period(self, op: str, area: str) -> int | None:
        """The area's rotation period in its latest verified charter; None once it ended."""
        charter = self.stored_charter(op)
        if charter is not None and charter.ends_at < self._clock():
            return None
        try:
            return charter.area(area).rotation_period if charter else DEFAULT_ROTATION_PERIOD
        except CryptoError:  # an area the charter no longer lists
            return DEFAULT_ROTATION_PERIOD

    def save_tracker(self) -> None:
        """Persist the replay tracker (counters seen per sender)."""
        self._store.save_tracker(self._tracker)

    def knows(self, operation_id: str) -> bool:
        """Whether a verified charter of ``operation_id`` is already in memory."""
        return operation_id in self._charters

    # -- charters --
    async def pin(self, operation_id: str, coordinator_root_key_id: bytes) -> Charter:
        """Pin the coordinator organisation's root (from the invitation) and verify the
        charter from it."""
        previous = self._store.pin(operation_id)
        verified = self._store.charters(operation_id)
        if verified and previous != coordinator_root_key_id:
            raise IntegrityWarning(
                f"operation {operation_id!r} is already pinned to another coordinator root, "
                "whose charter verified"
            )
        self._store.set_pin(operation_id, coordinator_root_key_id)
        try:
            charter = await self.charter(operation_id, refresh=True)
        except BaseException:
            # a root whose charter does not verify is not kept (nor one pinned before that
            # never verified)
            self._store.unpin(operation_id)
            raise
        self._store.resolve_warnings(operation_id, "charter-refused")
        return charter

    def stored_charter(self, operation_id: str) -> Charter | None:
        """The latest charter version verified earlier (kept sealed in the store), if any."""
        if operation_id in self._charters:
            return self._charters[operation_id]
        known = self._store.charters(operation_id)
        return Charter.from_bytes(known[-1]) if known else None

    async def charter(self, operation_id: str, *, refresh: bool = False) -> Charter:
        """The latest charter version, verified from the pinned root; a refusal is recorded
        as a ``charter-refused`` warning and raised."""
        if operation_id in self._charters and not refresh:
            return self._charters[operation_id]
        pinned = self._store.pin(operation_id)
        if pinned is None:
            raise ClientError(
                f"operation {operation_id!r} is not pinned: run `opseal op join` "
                "with the coordinator's fingerprint first"
            )
        known = [Charter.from_bytes(b) for b in self._store.charters(operation_id)]
        served = [
            Charter.from_bytes(b) for b in await self._session.api.charter_versions(operation_id)
        ]
        if known:
            self.revocations.settle([*self._known_charters(), known[-1]])
        try:
            if not known:
                # each version is held to the revocations in force when it was issued; the
                # first one, verified from the pin, supplies the roots that settle them
                first = served[:1]
                for attempt in range(2):
                    verify_charter_chain(
                        first, pinned_root_key_id=pinned, now=self._clock(),
                        revoked=self.revoked(first[0]).at(first[0].issued_at) if first else set(),
                    )  # fmt: skip
                    if attempt == 0 and first:
                        await self.revocations.refresh()
                        self.revocations.settle([*self._known_charters(), served[0]])
                known = served[:1]
            chain = known + [c for c in served if c.version > known[-1].version]
            for prev, new in zip(chain[len(known) - 1 :], chain[len(known) :], strict=False):
                verify_successor(
                    prev, new, now=self._clock(), revoked=self.revoked(prev).at(new.issued_at)
                )
                self.revocations.settle([new])  # roots it lists hold its successors to account
            for mine, theirs in zip(known, served, strict=False):
                if mine.hash != theirs.hash:
                    raise CryptoError(f"charter version {mine.version} was rewritten")
        except CryptoError as exc:
            self._store.warn(operation_id, "", None, "charter-refused", str(exc))
            raise IntegrityWarning(f"charter of {operation_id!r} refused: {exc}") from exc
        for c in chain:
            self._store.add_charter(operation_id, c.version, c.to_bytes())
        self._charters[operation_id] = chain[-1]
        self.revocations.settle([chain[-1]])
        return chain[-1]

    # -- sync and verification --
    async def sync(self) -> SyncReport:
        """Fetch everything new in this device's areas and verify it."""
        report = SyncReport()
        await self.refresh_revocations()
        cursor = (self._store.get("sync-cursor") or b"").decode()
        page = await self._session.api.sync(cursor, limit=PAGE_SIZE)
        worker = None
        if page.more and len(page.events) >= WORKER_FROM:  # a long sync: see .signatures
            worker = SignatureWorker()
            await worker.start()
        try:
            with _collector_spared(worker is not None):
                await self._sync_pages(page, worker, report)
        finally:
            if worker is not None:
                await worker.close()
        await self.refill_gaps(report)
        self.forks.check_frozen(self._clock(), self._rotation_period)
        return report

    async def _sync_pages(
        self, page: SyncPage, worker: SignatureWorker | None, report: SyncReport
    ) -> None:
        decoded = DecodedPage(page.events)
        while True:
            # The next page is asked for before this one is verified, so the server reads and
            # sends it meanwhile, and it is decoded and its signatures checked by the worker
            # while this one is verified; it is used only if this page was stored.
            ahead = asyncio.ensure_future(self._next_page(page.cursor)) if page.more else None
            await asyncio.sleep(0)  # let the request go out before the CPU-bound checks
            try:
                # One local transaction per page: verified entries, positions, the cursor and
                # the replay tracker are stored together, or not at all.
                with self._store.transaction():
                    for n, entry in enumerate(page.events):
                        if n % YIELD_EVERY == 0:
                            await self._look_ahead(worker, decoded, n, ahead)
                        await self.ingest(entry, report, decoded.get(n))
                    self._store.put("sync-cursor", page.cursor.encode())
                    self.save_tracker()
            except BaseException:
                self._tracker = self._store.load_tracker()  # forget what was rolled back
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await ahead
                raise
            if ahead is None:
                break
            page, decoded = await ahead

    async def _next_page(self, cursor: str) -> tuple[SyncPage, DecodedPage]:
        page = await self._session.api.sync(cursor, limit=PAGE_SIZE)
        return page, DecodedPage(page.events)

    async def _look_ahead(
        self,
        worker: SignatureWorker | None,
        current: DecodedPage,
        n: int,
        ahead: asyncio.Future[tuple[SyncPage, DecodedPage]] | None,
    ) -> None:
        """Between entries: let the next page arrive and be decoded, and send the worker the
        signatures it can check before the verifier reaches them (in this page, those past
        the next batch; then the whole next page)."""
        await asyncio.sleep(0)
        if worker is None:
            return
        await current.send(worker, self._signer, self._hints, start=n + CHUNK)
        if (
            ahead is not None
            and ahead.done()
            and not ahead.cancelled()
            and ahead.exception() is None
        ):
            await ahead.result()[1].send(worker, self._signer, self._hints)

    def _signer(self, op: str, area: str, epoch: int, sender: str) -> bytes | None:
        """The signing key ``sender`` had in the state of ``epoch`` the verifier last opened
        a message of the area with: whom to check a message's signature against ahead of its
        turn (its turn checks the key again)."""
        state = self._signers.get((op, area))
        member = state.member(sender) if state is not None and state.epoch == epoch else None
        return member.signing_key.raw if member is not None else None

    async def ingest(
        self,
        entry: Event | Mapping[str, Any],
        report: SyncReport | None = None,
        decoded: Decoded | None = None,
    ) -> None:
        """Verify one area entry (an :class:`~opseal.wire.operations.Event`, or a mapping
        with its ``operation_id``, ``area``, ``seq``, ``kind`` and ``body``) and record it (or
        a warning) in the local store. ``decoded`` is the entry's message as
        :class:`~.signatures.DecodedPage` decoded it."""
        report = report or SyncReport()
        if decoded is not None and decoded.place is not entry:
            decoded = None  # decoded from another entry: never pair them
        op, area, seq, kind, text = _place(entry)
        position = self._store.position(op, area)
        if seq <= position:
            if self._store.is_missing(op, area, seq):
                await self._refill(op, area, seq, kind, text, report)
            return
        if seq != position + 1:
            warning = self._store.warn(
                op,
                area,
                seq,
                "gap",
                f"the server skipped entries {position + 1}..{seq - 1} of {area}",
            )
            self._store.add_missing(op, area, position + 1, seq - 1, warning)
        report.entries += 1
        await self._verify_entry(op, area, seq, kind, text, report, decoded=decoded)
        self._store.set_position(op, area, seq)

    async def _verify_entry(self, op: str, area: str, seq: int, kind: str, text: str,
                            report: SyncReport, *, late: bool = False,
                            decoded: Decoded | None = None) -> None:  # fmt: skip
        """Verify and take one entry, or record its refusal (``fork`` for a fork). A ``late``
        commit or key package is not applied out of order (later commits hold the state)."""
        if late and kind not in ("message", "receipt"):
            return
        try:
            if kind == "message" and decoded is not None:
                self._take_message(
                    op, area, seq, decoded.body, self._charters.get(op) or await self.charter(op),
                    decoded.envelope, await decoded.signed_by(),
                )  # fmt: skip
                report.messages += 1
                return
            body = b64d(text, field="body")
            if kind == "commit":
                await self._take_commit(op, area, body)
                report.commits += 1
            elif kind == "message":
                self._take_message(op, area, seq, body, await self.charter(op))
                report.messages += 1
            elif kind == "key-package":
                await self._take_key_package(op, area, body)
                report.key_packages += 1
            elif kind == "receipt":
                await self.forks.check_receipt(op, area, seq, body)
        except ForkError as exc:
            report.refused += 1
            self._store.warn(op, area, seq, "fork", str(exc))
        except (CryptoError, IntegrityWarning) as exc:
            report.refused += 1
            self._store.warn(op, area, seq, f"{kind}-refused", str(exc))

    async def _refill(
        self, op: str, area: str, seq: int, kind: str, text: str, report: SyncReport
    ) -> None:
        """A skipped entry arrives: verified like any other; the gap closes once all came."""
        report.entries += 1
        await self._verify_entry(op, area, seq, kind, text, report, late=True)
        self._store.fill_missing(op, area, seq)

    async def refill_gaps(self, report: SyncReport) -> None:
        """Fetch again the entries the server skipped (``gap`` warnings) from each area."""
        for op, area, first, last in self._store.missing():
            after = first - 1
            with contextlib.suppress(ClientError):  # no longer readable: the gap stays open
                while after < last:
                    events = await self._session.api.events(op, area, after=after, limit=500)
                    if not events:
                        break
                    with self._store.transaction():
                        for event in events:
                            if event.seq <= last:
                                await self.ingest(event, report)
                        self.save_tracker()
                    after = events[-1].seq

    async def _take_commit(self, op: str, area: str, body: bytes) -> None:
        commit = Commit.from_bytes(body)
        charter = await self.charter(op)
        if commit.charter_hash != charter.hash:
            charter = await self.charter(op, refresh=True)
        latest = self._store.latest_state(op, area)
        state = GroupState.from_bytes(latest[1]) if latest else None
        reached = self._sequence_epoch(op, area)
        if (
            state is not None
            and commit.epoch <= state.epoch
            and reached in (None, commit.epoch - 1)  # served at its place, not replayed later
            and self._is_own(op, area, commit)
        ):
            self._store.put(f"sequence-epoch/{op}/{area}", str(commit.epoch).encode())
            return  # a commit this device made and applied when it posted it
        new_state = apply_commit(
            state, commit, charter, now=self._clock(), instance_id=self._instance_id,
            revoked=self.revoked(charter).at(commit.created_at),
        )  # fmt: skip
        problem = membership.check_adds(self._store, commit)  # after the epoch checks
        if problem is not None:
            raise IntegrityWarning(problem)
        with self._store.transaction():
            membership.note_commit(self._store, commit, self._clock())
            self._store.add_state(op, area, commit.epoch, new_state.to_bytes())
            self._store.put(f"sequence-epoch/{op}/{area}", str(commit.epoch).encode())
            if new_state.member(self._identity.device_id) is not None:
                keys = secrecy.held_init_keys(self._store, op, area)
                secret = open_epoch_secret(commit, new_state, self._identity, keys)
                self._store.add_secret(op, area, commit.epoch, secret)
                for epoch, past in open_history(commit, new_state, self._identity, keys).items():
                    self._store.add_secret(op, area, epoch, past)
            secrecy.after_commit(
                self._store, state, new_state, self._identity.device_id,
                window=secrecy.secret_window(charter, area), now=self._clock(),
            )  # fmt: skip
        self._release_held(op, area, charter)

    def _release_held(self, op: str, area: str, charter: Charter) -> None:
        """Open messages held for want of their epoch secret, now that history may have
        brought it. Each was already checked against its place in the sequence."""
        for seq, epoch, body in self._store.held(op, area):
            if self._store.secret(op, area, epoch) is None:
                continue
            try:
                self._open_message(op, area, seq, Envelope.from_bytes(body), charter)
            except (CryptoError, IntegrityWarning) as exc:
                kind = "fork" if isinstance(exc, ForkError) else "message-refused"
                self._store.warn(op, area, seq, kind, str(exc))
            self._store.release(op, area, seq)

    def _is_own(self, op: str, area: str, commit: Commit) -> bool:
        raw = self._store.state(op, area, commit.epoch)
        if raw is None or commit.committer != self._identity.device_id:
            return False
        mine = GroupState.from_bytes(raw)
        same = (mine.previous_state_hash, mine.roster_hash, mine.charter_hash)
        return same == (commit.previous_state_hash, commit.roster_hash, commit.charter_hash)

    def _sequence_epoch(self, op: str, area: str) -> int | None:
        """The epoch of the last commit accepted in the area's sequence: the server stores each
        message after its epoch's commit and before the next, so it is the only epoch the
        area's next messages may carry (``None`` before the first commit)."""
        raw = self._store.get(f"sequence-epoch/{op}/{area}")
        return None if raw is None else int(raw)

    async def _take_key_package(self, op: str, area: str, body: bytes) -> None:
        """Check a join request as an admitting client would, so that a forged device or a
        substituted key is reported rather than silently skipped."""
        package = KeyPackage.from_bytes(body)
        if (package.operation_id, package.area) != (op, area):
            raise IntegrityWarning(
                f"key package for {package.operation_id}/{package.area} served in {op}/{area}"
            )
        charter = await self.charter(op)
        try:
            package.verify(charter, now=self._clock(), revoked=self.revoked(charter))
        except CryptoError:  # the cached charter may predate the device's organisation
            charter = await self.charter(op, refresh=True)
            package.verify(charter, now=self._clock(), revoked=self.revoked(charter))

    def _take_message(
        self, op: str, area: str, seq: int, body: bytes, charter: Charter,
        envelope: Envelope | None = None, signed_by: CheckedSignature | None = None,
    ) -> None:  # fmt: skip
        """Check a message's place, then open it (``envelope`` is ``body`` decoded, if the
        caller did; ``signed_by`` as for :func:`~opseal.crypto.envelope.open_envelope`)."""
        envelope = envelope if envelope is not None else Envelope.from_bytes(body)
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
        raw_state = self._store.state(op, area, header.epoch)
        if raw_state is None:
            raise IntegrityWarning(f"no verified state for epoch {header.epoch} of {area}")
        secret = self._store.secret(op, area, header.epoch)
        if secret is None:
            # Posted before this device was admitted: a 'shared' area's history may bring the
            # key with the admitting commit; until then the message waits, unread.
            self._store.hold(op, area, seq, header.epoch, body)
            return
        self._open_message(op, area, seq, envelope, charter, raw_state, secret, signed_by)

    def _open_message(
        self, op: str, area: str, seq: int, envelope: Envelope, charter: Charter,
        raw_state: bytes | None = None, secret: bytes | None = None,
        signed_by: CheckedSignature | None = None,
    ) -> None:  # fmt: skip
        """Open a message against its epoch's verified state and secret (read from the
        store unless the caller just did)."""
        header = envelope.header
        if raw_state is None or secret is None:
            raw_state = self._store.state(op, area, header.epoch)
            secret = self._store.secret(op, area, header.epoch)
        if raw_state is None or secret is None:
            raise IntegrityWarning(f"no verified key for epoch {header.epoch} of {area}")
        state = _parsed_state(raw_state)
        if self._signers.get((op, area)) is not state:
            self._signers[(op, area)] = state
            self._hints += 1
        sender = state.member(header.sender)
        if sender is not None and sender.is_revoked(
            self.revoked(charter).at(header.client_time_ms // 1000)
        ):
            raise IntegrityWarning(f"sender {header.sender!r} was revoked before it wrote this")
        plaintext = open_envelope(
            envelope, state=state, epoch_secret=secret, charter=charter, tracker=self._tracker,
            authenticator=self.forks.authenticator(op, area, state, secret), signed_by=signed_by,
        )  # fmt: skip
        assert sender is not None  # open_envelope refuses a sender outside the roster
        self._store.add_message(
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

    def gaps(self, op: str, area: str) -> dict[str, list[int | list[int]]]:
        """Per sender, counters skipped and not yet arrived: possibly missing messages."""
        out = {}
        for o, a, sender, _highest, missing in self._tracker:
            if (o, a) == (op, area) and missing:
                out[sender] = missing
        return out

    def current(self, op: str, area: str) -> tuple[GroupState, bytes]:
        """This device's latest verified state in ``op``/``area`` and its epoch secret."""
        latest = self._store.latest_state(op, area)
        if latest is None:
            raise ClientError(f"this device is not a member of {op}/{area} yet")
        state = GroupState.from_bytes(latest[1])
        secret = self._store.secret(op, area, state.epoch)
        if secret is None or state.member(self._identity.device_id) is None:
            raise ClientError(f"this device is not a member of {op}/{area} (epoch {state.epoch})")
        return state, secret


@lru_cache(maxsize=32)
def _parsed_state(raw: bytes) -> GroupState:
    """A verified group state as stored, parsed once: every message of an epoch is checked
    against the same roster, and parsing its members' keys (ML-KEM, X25519, Ed25519) cost more
    than checking the message itself (a third of a first sync's time)."""
    return GroupState.from_bytes(raw)


def _place(entry: Event | Mapping[str, Any]) -> tuple[str, str, int, str, str]:
    """An entry's operation, area, sequence number, kind and base64url body."""
    if isinstance(entry, Event):
        return entry.operation_id, entry.area, entry.seq, entry.kind, entry.body
    try:
        op, area, seq = entry["operation_id"], entry["area"], entry["seq"]
        kind, body = entry["kind"], entry["body"]
    except (KeyError, TypeError) as exc:
        raise ClientError(f"an entry needs operation_id, area, seq, kind and body ({exc})") from exc
    if not all(isinstance(v, str) for v in (op, area, kind, body)) or type(seq) is not int:
        raise ClientError("an entry's seq is an integer and its other fields are text")
    return op, area, seq, kind, body
