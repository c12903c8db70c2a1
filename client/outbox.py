"""``Outbox``: every submission is sealed, stored, then sent until the server confirms it.

Items are sealed for the area's current epoch and written to the local store's outbox in one
transaction; :meth:`Outbox.flush` sends them in batches, retrying transport failures with
backoff. Message ids make retries idempotent: a batch the server refused for a new epoch is
sealed again under the same ids after a sync, and one it refused for good is set aside (shown
by ``opseal outbox``) so the rest is not blocked. Seizure records are submitted exactly once
(:meth:`Outbox.post_seizures`): each has a deterministic id, and ids already queued or
verified from this organisation are skipped.

It depends on the session (to send and log in again), the store, the device identity, the
verified group state (:class:`~opseal.client.ports.MemberStates`) and a resync callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opseal.crypto.envelope import Envelope, Header, seal
from opseal.crypto.group import DeviceIdentity, GroupState, epoch_authenticator

from . import attachments, content, corrections
from .errors import (
    ApiError,
    MalformedAnswerError,
    RateLimitedError,
    Refusal,
    ServerError,
    SubmissionRefused,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    WrongEpochError,
)
from .ports import MemberStates, Resync
from .session import Session
from .store import OutboxItem, Store

__all__ = ["BATCH", "OnWait", "Outbox", "Queued", "retrying"]

OnWait = Callable[[float, float, TransportError], None]
"""Told before each wait for an unreachable server: the delay, the seconds left, the error."""

BATCH = 500
"""Outbox items sent per round."""


T = TypeVar("T")


async def retrying(
    action: Callable[[], Awaitable[T]],
    deadline: float,
    on_wait: OnWait | None = None,
    between: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """``action()``, tried again with backoff (0.5 s doubling to 10 s) while the server is
    unreachable, until it has been so for ``deadline`` seconds; ``between()`` (e.g. a fresh
    login) runs before each new try."""
    delay, stop = 0.5, time.monotonic() + deadline
    while True:
        try:
            return await action()
        except TransportError as exc:
            left = stop - time.monotonic()
            if left <= 0:
                raise
            wait = min(delay, left)
            if on_wait is not None:
                on_wait(wait, left, exc)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 10.0)
        if between is not None:
            with contextlib.suppress(TransportError):
                await between()


@dataclass(frozen=True)
class Queued:
    """Seizure records put in the outbox: every record's id, and how many were new (the
    others were queued or sent before)."""

    ids: list[str]
    new: int

    @property
    def already(self) -> int:
        return len(self.ids) - self.new


class Outbox:
    """Seals, queues and sends this device's messages."""

    def __init__(
        self,
        session: Session,
        store: Store,
        identity: DeviceIdentity,
        instance_id: str,
        states: MemberStates,
        resync: Resync,
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._states, self._resync = instance_id, states, resync

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
            self._instance_id,
            state.operation_id,
            state.area,
            state.epoch,
            self._identity.device_id,
            counter,
            message_id,
            content_type,
            handling,
            requires_ack,
            int(time.time() * 1000),
            epoch_authenticator(secret, state),  # a member on another branch sees the fork
        )
        return seal(header, plaintext, secret, self._identity.signing_key)

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
        state, secret = self._states.current(op, area)
        ids = list(message_ids) if message_ids is not None else [uuid.uuid4() for _ in items]
        with self._store.transaction():
            first = self._store.take_counters(op, area, len(items))
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
            self._store.enqueue(queued)
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
        """Seal, queue and send one message; returns its message id. A refusal raises
        :class:`~.errors.SubmissionRefused` (the message stays in the outbox, refused)."""
        [message_id] = self.enqueue(
            op, area, [(content_type, payload)], handling=handling, requires_ack=requires_ack
        )
        await self.flush()
        self.check([message_id])
        return message_id

    def refusals(self, message_ids: Sequence[str]) -> list[Refusal]:
        """Of ``message_ids``, those the server refused for good, with its code and message."""
        out = []
        for message_id, op, area, error in self._store.outbox_refused(list(message_ids)):
            code, _, message = error.partition(": ")
            out.append(Refusal(message_id, op, area, code, message or error))
        return out

    def check(self, message_ids: Sequence[str]) -> None:
        """Raise :class:`~.errors.SubmissionRefused` if the server refused any of
        ``message_ids``: a refused submission is never reported as sent."""
        refused = self.refusals(message_ids)
        if refused:
            gone = {r.message_id for r in refused}
            raise SubmissionRefused(refused, [m for m in message_ids if m not in gone])

    async def flush(
        self, *, deadline: float = 60.0, progress: Any = None, on_wait: OnWait | None = None
    ) -> int:
        """Send the outbox until it is empty; returns how many were confirmed. An unreachable
        server is retried with backoff (``on_wait(delay, remaining, error)`` is told before
        each wait) until it has been unreachable for ``deadline`` seconds; then the
        :class:`~.errors.TransportError` is raised and the rest stays queued. Refusals are
        set aside (see :meth:`refusals`), not raised."""
        sent = 0
        while batch := self._store.pending(BATCH):
            by_area: dict[tuple[str, str], list[OutboxItem]] = {}
            for item in batch:
                by_area.setdefault((item.op, item.area), []).append(item)
            for (op, area), items in by_area.items():
                send = functools.partial(self._send, op, area, items)
                sent += await retrying(send, deadline, on_wait, self._session.relogin)
                if progress is not None:
                    progress(len(items))
        return sent

    async def _send(self, op: str, area: str, items: list[OutboxItem]) -> int:
        try:
            seqs = await self._session.api.post_batch(op, area, [i.envelope for i in items])
        except WrongEpochError:
            await self._resync()
            self._reseal(op, area, items)
            return 0
        except MalformedAnswerError:
            raise  # not confirmed: the items stay queued for the next run, nothing is retried
        except (RateLimitedError, UnavailableError, UnauthorizedError, ServerError) as exc:
            raise TransportError(str(exc)) from exc  # transient: retried with backoff
        except ApiError as exc:
            return self._refused(items, exc)
        with self._store.transaction():
            self._store.mark_sent([(i.message_id, s) for i, s in zip(items, seqs, strict=True)])
        return len(seqs)

    def _refused(self, items: list[OutboxItem], exc: ApiError) -> int:
        """The server refused the batch for good: set aside the envelope it names (or the
        whole batch), so the rest of the outbox is not blocked; `opseal outbox` shows it."""
        index = exc.details.get("index")
        culprits = [items[index]] if isinstance(index, int) and 0 <= index < len(items) else items
        with self._store.transaction():
            self._store.mark_refused([i.message_id for i in culprits], str(exc))
        self._store.warn(items[0].op, items[0].area, None, "submission-refused", str(exc))
        return 0

    def _reseal(self, op: str, area: str, items: list[OutboxItem]) -> None:
        """The area moved to a new epoch: seal the same messages again (same ids) for it, and
        every later pending one of the area, so counters still rise in sending order."""
        state, secret = self._states.current(op, area)
        with self._store.transaction():
            items = self._store.pending(1 << 30, op, area)
            first = self._store.take_counters(op, area, len(items))
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
                self._store.replace_envelope(item.message_id, envelope.to_bytes())

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
        posted are skipped, the rest go through the outbox. Returns every record's id; records
        the server refused raise :class:`~.errors.SubmissionRefused` naming each.

        ``progress(n)`` is called with counts of records done, the skipped ones first.
        """
        queued = self.queue_seizures(op, records, area, handling=handling)
        if progress is not None and queued.already:
            progress(queued.already)
        await self.flush(progress=progress)
        self.check(queued.ids)
        return queued.ids

    def queue_seizures(
        self,
        op: str,
        records: Sequence[dict[str, Any]],
        area: str = "seizures",
        *,
        handling: str = "H0",
    ) -> Queued:
        """Put seizure records in the outbox, each once (see :meth:`post_seizures`), without
        sending anything: works while the server is unreachable."""
        payloads = self._seizure_payloads(records)
        org = self._identity.organisation_id
        ids = [content.record_message_id(op, org, p) for p in payloads]
        fresh = self._unsubmitted(payloads, ids)
        if fresh:
            self.enqueue(
                op,
                area,
                [("seizure", p) for p, _ in fresh],
                handling=handling,
                message_ids=[i for _, i in fresh],
            )
        return Queued([str(i) for i in ids], len(fresh))

    async def post_corrections(
        self,
        op: str,
        records: Sequence[dict[str, Any]],
        area: str = "seizures",
        *,
        handling: str = "H0",
    ) -> list[str]:
        """Submit changed versions of records this organisation posted in the area, each as
        a ``correction`` superseding the latest verified version (sync first); records not
        posted before are submitted as new. Returns the message id now holding each record."""
        payloads = self._seizure_payloads(records)
        org, ids = self._identity.organisation_id, [p["record_id"] for p in payloads]
        mine = corrections.submissions(corrections.own_versions(self._store, op, area, org, ids))
        plan = corrections.plan(op, org, payloads, mine)
        fixes = [(p, i) for p, i in plan.corrections() if str(i) not in self._known_ids([str(i)])]
        if fixes:
            self.enqueue(
                op,
                area,
                [("correction", p) for p, _ in fixes],
                handling=handling,
                message_ids=[i for _, i in fixes],
            )
        new_ids = self.queue_seizures(op, plan.new, area, handling=handling).ids
        await self.flush()
        self.check([*(str(i) for _, i in fixes), *new_ids])
        held = dict(plan.unchanged)
        held.update((r["record_id"], str(i)) for _, r, i in plan.changed)
        held.update(zip((r["record_id"] for r in plan.new), new_ids, strict=True))
        return [held[p["record_id"]] for p in payloads]

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
        """Those of ``ids`` in the outbox or under a verified message of this organisation
        (any of its devices); another organisation's message under one of them holds
        nothing (the sender is sealed in the store's row, so those rows are opened)."""
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._store.db.execute(
                f"SELECT message_id FROM outbox WHERE message_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
                chunk,
            )
            known.update(row[0] for row in rows)
        org = self._identity.organisation_id
        known.update(m.message_id for m in self._store.messages_with_ids(ids) if m.org == org)
        return known
