"""``Client``: a device's view of OpSeal, verified end to end — a thin front over its parts.

Like mautrix-python's ``OlmMachine``, the client owns nothing but the device's profile, keys,
store and connection, and composes parts that each get a narrow interface (design §13):

- :class:`~.verifier.Verifier` — the trust core: charters from the pinned root, commits,
  messages, sync (it is also the :class:`~.ports.Charters` and :class:`~.ports.MemberStates`
  the other parts use);
- :class:`~.outbox.Outbox` — sealed submissions, sent and retried until confirmed;
- :class:`~.admission.Admission` — users, operations, areas, joining and admitting devices;
- :class:`~.attachments.Attachments` — blobs, through the :class:`~.ports.Transfer` protocol;
- :class:`~.receipts.Receipts`, :class:`~.alerts.Alerts`, :class:`~.release.Releaser`,
  :class:`~.audit.Auditor` and :class:`~.tail.Follower`.

Every public method below delegates to one part; their names and signatures are the
library's surface (mirrored by :class:`~.sync.SyncClient`).

Long because: it is the library's whole surface — one short delegating method per operation
of every part, each with the docstring that :class:`~.sync.SyncClient` mirrors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opseal.crypto.attachments import FileMeta
from opseal.crypto.certs import Certificate
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d
from opseal.crypto.envelope import forget_epoch_keys
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import DeviceIdentity
from opseal.crypto.keys import KdfParams, SigningKey, VerifyKey

from . import attachments, audit, enrolment, schema
from .admission import YEAR, Admission, certify_user_key
from .alerts import Alerts
from .api import ApiClient
from .errors import ClientError, Refusal
from .outbox import OnWait, Outbox, Queued
from .profile import Profile, ProfileError, ProfileInfo, check_passphrase, device_from
from .receipts import Receipts
from .release import Releaser
from .session import Session
from .store import Store, StoredMessage
from .tail import Follower
from .verifier import IntegrityWarning, SyncReport, Verifier

__all__ = ["Client", "IntegrityWarning", "SyncReport", "check_server_url", "root_key_id"]


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
        self.profile, self.info, self.identity, self.store = profile, info, identity, store
        self.session = Session(api, info.instance_id, identity)
        instance = info.instance_id

        def clock() -> int:  # late-bound, so that a test can set the client's clock
            return self.now()

        log_key = b64d(info.log_key) if info.log_key else b""
        self.verifier = Verifier(self.session, store, identity, instance, clock, log_key)
        self.outbox = Outbox(self.session, store, identity, instance, self.verifier, self.sync)
        self.admission = Admission(
            self.session, store, identity, instance, clock, self.verifier, self.verifier, self.sync,
            self.verifier,
        )  # fmt: skip
        self.attachments = attachments.Attachments(self.session, store, profile.path)
        self.receipts = Receipts(
            self.session, store, identity, instance, clock, self.verifier,
            self.verifier.forks.gossip,
        )  # fmt: skip
        self.alerts = Alerts(store, identity, self.verifier, self.outbox)
        self.releaser = Releaser(store, identity.organisation_id, self.verifier, self.outbox)
        self.auditor = audit.Auditor(self.session, store)
        self.follower = Follower(self.session, store, self.verifier)

    @property
    def api(self) -> ApiClient:
        """The API client every part sends through (replaceable, e.g. to go through a proxy)."""
        return self.session.api

    @api.setter
    def api(self, api: ApiClient) -> None:
        self.session.api = api

    # -- opening -------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        profile: Profile,
        passphrase: str | None,
        *,
        login: bool = True,
        keys: dict[str, str] | None = None,
    ) -> Client:
        """Open an enrolled profile, its device key unlocked with ``passphrase`` — or, given
        ``keys``, the already opened device key file (what :mod:`.agent` serves)."""
        info = await asyncio.to_thread(_checked_info, profile)
        # Argon2id lets go of the interpreter lock: aiohttp's import and the TLS context
        # (~0.15 s of a command's start) are done meanwhile instead of after it.
        unlocking = asyncio.ensure_future(
            asyncio.to_thread(_unlock, profile, info, passphrase, keys)
        )
        try:
            api = await ApiClient(info.server, ssl_context=_ssl_context(info)).__aenter__()
        except BaseException:
            with contextlib.suppress(Exception):
                await unlocking
            raise
        try:
            identity, store_key = await unlocking
            store = Store(profile.path / "state.db", store_key)  # sqlite3 keeps to its thread
        except BaseException:
            await api.close()
            raise
        client = cls(profile, info, identity, store, api)
        if login:
            try:
                await client.login()
            except BaseException:
                await client.close()
                raise
        return client

    async def login(self) -> None:
        await self.session.login()

    async def close(self) -> None:
        self.verifier.save_tracker()
        await self.api.close()
        self.store.close()
        forget_epoch_keys()  # no epoch secret outlives the client in the process's caches

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
        log_key: str = "",
    ) -> Client:
        """Enrol this device with a one-time code: the organisation root (held by the focal
        point) certifies a new user identity key, which certifies this device. For service
        accounts on the focal point's own machine; people enrol by request (:mod:`.enrolment`).
        ``log_key`` (a fingerprint or the key) pins the instance's audit log key."""
        check_server_url(server, allow_http=allow_http)
        check_passphrase(passphrase, "device")  # before the one-time code is spent
        now = int(time.time())
        user_key = SigningKey.generate()
        user_cert = certify_user_key(
            root, org_id, user_id, user_kind, name, user_key.verify_key, now
        )
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
            if log_key:
                enrolment.check_log_key(described.log_key, log_key)
            await api.enrol(
                code, user_cert.to_bytes(), identity.device_cert.to_bytes(), root.verify_key.raw
            )
        info.instance_id, info.log_key = described.instance_id, described.log_key
        store_key = os.urandom(32)

        def save() -> None:  # files and Argon2id: off the event loop
            profile.save_info(info)
            profile.save_user(user_key, user_cert, passphrase, params)
            profile.save_device(identity, store_key, passphrase, params)

        await asyncio.to_thread(save)
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
        return await self.admission.certify_user(
            root, user_id=user_id, identity_key=identity_key, user_kind=user_kind, name=name
        )

    # -- charters, operations and admission (Verifier, Admission) --------------------------
    async def pin(self, operation_id: str, coordinator_root_key_id: bytes) -> Charter:
        """Pin the coordinator organisation's root (from the invitation) and verify the
        charter from it."""
        return await self.verifier.pin(operation_id, coordinator_root_key_id)

    async def charter(self, operation_id: str, *, refresh: bool = False) -> Charter:
        """The latest charter version, verified from the pinned root."""
        return await self.verifier.charter(operation_id, refresh=refresh)

    def stored_charter(self, operation_id: str) -> Charter | None:
        """The latest charter version verified earlier and kept in the store (no network)."""
        return self.verifier.stored_charter(operation_id)

    async def create_operation(
        self, draft: Charter, user_key: SigningKey, retention_days: int = 365
    ) -> Charter:
        """As a coordinator: sign charter version 1, publish it and create every area."""
        return await self.admission.create_operation(draft, user_key, retention_days)

    async def create_area(self, operation_id: str, area: str) -> None:
        """As a coordinator: create ``area`` with this device as its only member."""
        await self.admission.create_area(operation_id, area)

    async def join(self, operation_id: str, coordinator_root_key_id: bytes) -> list[str]:
        """Accept an invitation: pin the coordinator root, verify the charter, and ask to join
        every area this organisation's role may read. Returns those areas."""
        return await self.admission.join(operation_id, coordinator_root_key_id)

    async def admit(self, op: str | None = None, readmit: Sequence[str] = ()) -> list[str]:
        """Admit pending devices that the charter allows this device to admit, removing in the
        same commit every device that must go; a removed device comes back only if named in
        ``readmit``. Returns the admitted devices."""
        return await self.admission.admit(op, readmit)

    async def remove(
        self, op: str, *, device: str | None = None, org: str | None = None
    ) -> list[str]:
        """Remove a device, or every device of an organisation, from the areas of ``op``;
        returns the removed devices."""
        return await self.admission.remove(op, device=device, org=org)

    async def revoke(self, root: SigningKey, subject: Certificate, reason: str = "") -> str:
        """As a focal point: revoke ``subject``'s key with the organisation root."""
        return await self.admission.revoke(root, subject, reason)

    async def revoke_device(self, root: SigningKey, device_id: str, reason: str = "") -> str:
        """As a focal point: revoke one of the organisation's devices by id."""
        record = await self.api.device(device_id)
        return await self.revoke(
            root, Certificate.from_bytes(b64d(record.device_certificate)), reason
        )

    async def rotate(self, op: str, area: str | None = None) -> list[str]:
        """A new epoch in ``area`` (else every area of ``op``), this device's init key renewed."""
        return await self.admission.rotate(op, area)

    async def rotate_due(self, period: int | None = None) -> list[tuple[str, str]]:
        """Rotate every area whose epoch is as old as its charter period (or ``period``)."""
        return await self.admission.rotate_due(period)

    async def admit_watch(self, interval: float = 5.0, rounds: int | None = None) -> None:
        """Admit pending devices every ``interval`` seconds (``rounds`` times, or forever)."""
        await self.admission.admit_watch(interval, rounds)

    # -- sync and verification (Verifier) --------------------------------------------------
    async def sync(self) -> SyncReport:
        """Fetch everything new in this device's areas and verify it; then replace this
        device's init key in any area where it is a week old (or as old as the area's charter
        history window, if shorter) and forget secrets past that window (design §3)."""
        report = await self.verifier.sync()
        await self.admission.refresh_keys()
        return report

    async def ingest(self, entry: dict[str, Any], report: SyncReport | None = None) -> None:
        """Verify one area entry and record it (or a warning) in the local store."""
        await self.verifier.ingest(entry, report)

    def gaps(self, op: str, area: str) -> dict[str, list[int | list[int]]]:
        """Per sender, counters skipped and not yet arrived (a run of more than three as
        ``[first, last]``): possibly missing messages."""
        return self.verifier.gaps(op, area)

    def warnings(self, since_id: int = 0) -> list[tuple[int, str, str, int | None, str, str]]:
        """What failed verification, as stored warnings after ``since_id``."""
        return self.store.warnings(since_id)

    def read(
        self, op: str, area: str | None = None, *, after: int = 0, content_type: str | None = None
    ) -> list[StoredMessage]:
        """Verified messages (call :meth:`sync` first for the newest)."""
        return self.store.messages(op, area, after=after, content_type=content_type)

    async def tail(
        self,
        handler: Callable[[StoredMessage], Any],
        *,
        stop: asyncio.Event | None = None,
        on_wait: OnWait | None = None,
    ) -> None:
        """Follow this device's areas in real time until ``stop`` is set: every entry is
        verified through :meth:`ingest`, the sync cursor advances after each, and
        ``handler(message)`` (plain or async) sees each newly verified message. A cut
        connection is resumed from the cursor, with backoff (``on_wait(delay, inf, error)``
        is told before each wait)."""
        await self.follower.tail(handler, stop=stop, on_wait=on_wait)

    # -- posting through the outbox (Outbox) -------------------------------------------------
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
        return self.outbox.enqueue(
            op, area, items, handling=handling, requires_ack=requires_ack, message_ids=message_ids
        )

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
        return await self.outbox.post(
            op, area, content_type, payload, handling=handling, requires_ack=requires_ack
        )

    async def flush(
        self, *, deadline: float = 60.0, progress: Any = None, on_wait: OnWait | None = None
    ) -> int:
        """Send the outbox, retrying an unreachable server with backoff (telling ``on_wait``);
        returns how many were confirmed. Unreachable for ``deadline`` seconds: raises
        :class:`~.errors.TransportError`, the rest stays queued. Refusals: :meth:`refusals`."""
        return await self.outbox.flush(deadline=deadline, progress=progress, on_wait=on_wait)

    def refusals(self, message_ids: Sequence[str]) -> list[Refusal]:
        """Of ``message_ids``, those the server refused for good, with its code and message."""
        return self.outbox.refusals(message_ids)

    def queue_seizures(
        self, op: str, records: Sequence[dict[str, Any]], area: str = "seizures", *,
        handling: str = "H0",
    ) -> Queued:  # fmt: skip
        """Put seizure records in the outbox, each once, without sending (works offline);
        :meth:`flush` sends them and :meth:`refusals` tells what the server refused."""
        return self.outbox.queue_seizures(op, records, area, handling=handling)

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
        (:func:`~.content.record_message_id`, from the operation, this organisation and the
        record id); records already queued or posted are skipped, the rest go through the
        outbox. Returns every record's id; refusals raise :class:`~.errors.SubmissionRefused`.

        ``progress(n)`` is called with counts of records done, the skipped ones first.
        """
        return await self.outbox.post_seizures(op, records, area, progress, handling=handling)

    async def post_corrections(
        self,
        op: str,
        records: Sequence[dict[str, Any]],
        area: str = "seizures",
        *,
        handling: str = "H0",
    ) -> list[str]:
        """Submit changed versions of this organisation's records as corrections of their
        latest verified versions (new records as seizures); returns the id holding each."""
        return await self.outbox.post_corrections(op, records, area, handling=handling)

    # -- receipts and audit (Receipts, Auditor) ---------------------------------------------
    async def ack(self, message_id: str, kind: str = "ack", *, sender: str | None = None) -> None:
        """Sign and send a receipt of kind ``kind`` for a verified message (of ``sender``,
        needed when several senders used the id)."""
        await self.receipts.ack(message_id, kind, sender)

    async def acks(self, message_id: str, *, sender: str | None = None) -> dict[str, Any]:
        """Who read and acknowledged a verified message (of ``sender``, needed when several
        senders used the id), from the signed receipts verified here; ``unverified`` lists
        where the server's summary claims otherwise."""
        return await self.receipts.acks(message_id, sender)

    async def verify_audit(
        self, max_age: int = enrolment.CHECKPOINT_MAX_AGE, *, accept_restore: bool = False
    ) -> audit.AuditReport:
        """Verify the audit log against the pinned log key and the last checkpoint seen; a
        newest checkpoint older than ``max_age`` seconds is recorded as a warning. A log
        restored from a backup raises :class:`~.audit.LogRestoredError` naming the lost
        entries, unless ``accept_restore`` (a person's decision, recorded as a warning)."""
        report = await self.auditor.verify(b64d(self.info.log_key), accept_restore=accept_restore)
        if report.restored is not None:
            self.store.warn("", "", None, "log-restored", str(report.restored))
        problem = enrolment.checkpoint_age_problem(report.checkpoint.timestamp, self.now(), max_age)
        if problem is not None:
            self.store.warn("", "", None, "checkpoint-stale", problem)
        return report

    # -- content: attachments, alerts, release (Attachments, Alerts, Releaser) ---------------
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
        return await self.attachments.upload(
            op, area, path, media_type, progress, chunk_size=chunk_size
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
        return await self.attachments.download(
            meta, blob_id, dest_path, progress, chunk_size=chunk_size
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
        return await self.alerts.alert(op, area, targets, action, deadline, handling=handling)

    async def respond(
        self, op: str, area: str, alert_id: str, outcome: str, *, handling: str = "H0"
    ) -> str:
        """Answer a verified alert addressed to this organisation; returns the message id."""
        return await self.alerts.respond(op, area, alert_id, outcome, handling=handling)

    def responses(self, alert_id: str) -> list[StoredMessage]:
        """Verified responses to an alert (call :meth:`sync` first for the newest)."""
        return self.alerts.responses(alert_id)

    async def release(self, message_id: str, to_area: str, keep: Sequence[str] = ()) -> str:
        """As a coordinator: post a sanitised copy of a verified seizure record into a
        stakeholder area (rules and sanitising in :mod:`.release`: free text is erased unless
        named in ``keep``); returns the release's message id. Call :meth:`sync` first so that
        the record and any permission are known."""
        return await self.releaser.release(message_id, to_area, keep)


def _checked_info(profile: Profile) -> ProfileInfo:
    """The profile's settings, its server's address checked before anything connects."""
    info = profile.info()
    check_server_url(info.server, allow_http=info.allow_http)
    return info


def _unlock(
    profile: Profile, info: ProfileInfo, passphrase: str | None, keys: dict[str, str] | None
) -> tuple[DeviceIdentity, bytes]:
    """Unlock the device key (Argon2id): file work and a deliberately slow key derivation,
    run in a thread by :meth:`Client.open`."""
    if keys is not None:
        identity, store_key = device_from(keys)
        if identity.device_id != info.device_id:
            raise ProfileError(f"the keys given are not those of profile {profile.name!r}")
    elif passphrase is None:
        raise ProfileError("a passphrase (or the opened device key) is needed")
    else:
        identity, store_key = profile.load_device(passphrase)
    schema.prepare()  # records are checked on the loop: load the validator (file reads) here
    return identity, store_key


def root_key_id(fingerprint_or_key: str) -> bytes:
    """Accept a root public key (base64url) and return its key id."""
    try:
        return VerifyKey(b64d(fingerprint_or_key)).key_id
    except (CryptoError, ValueError) as exc:
        raise ClientError("expected the coordinator organisation's root key (base64url)") from exc
