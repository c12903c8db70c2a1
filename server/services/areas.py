"""Areas: key packages, commits, messages and sync — the heart of the server.

Every entry of an area gets the next number of the area's gap-free sequence, assigned in the
transaction that stores it: the area row is locked (``FOR UPDATE`` on PostgreSQL; SQLite runs
one writer at a time), the entries are inserted, ``next_seq`` is moved on, and the audit
leaves are appended, all or nothing. (A group of single posts on PostgreSQL may instead be
written by one statement that moves ``next_seq`` only from the number it was judged on:
:mod:`.group_commit`.) Events go to the bus after commit.

The server checks what it can — signatures against registered keys, epochs, roster
membership, the charter's read and post rules, the operation's phase — but it never sees
plaintext and never creates a commit.

Long because: the rules of an area's entries — storing, checking, who may read them (for one
device or, for the stream's re-checks, many at once) and sync — belong together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.envelope import MAX_COUNTER_JUMP, CheckedSignature, Envelope
from opseal.crypto.errors import CryptoError, SignatureError
from opseal.crypto.group import Commit, GroupState, KeyPackage, apply_commit
from opseal.crypto.keys import VerifyKey

from ..bus import Event
from ..errors import (
    BadRequest,
    Conflict,
    CounterRefused,
    Forbidden,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    WrongEpoch,
)
from ..storage import areas as store
from ..storage import audit, entries
from ..storage import identity as identity_store
from ..storage.db import generic_plans
from ..storage.entries import entries_after
from .base import Context, Principal, Tx
from .operations import Membership, membership

__all__ = [
    "AreaRef",
    "cursor_order",
    "decode_cursor",
    "encode_cursor",
    "encode_cursor_of",
    "event_json",
    "list_commits",
    "list_events",
    "list_key_packages",
    "parse_envelopes",
    "post_commit",
    "post_key_package",
    "post_messages",
    "readable_areas",
    "readable_areas_of",
    "store_envelopes",
    "sync",
]


MAX_SEQ = 2**62
"""The largest sequence number a cursor may carry (the views bound ``after`` alike)."""


class AreaRef(NamedTuple):
    """An area of an operation. A named tuple, not a dataclass: streams hash and compare
    these for every subscriber of every event, and a tuple does both in C."""

    operation_id: str
    area: str


# -- access ----------------------------------------------------------------------------
async def _lock_area(conn: AsyncConnection, ref: AreaRef) -> Any:
    row = await store.lock(conn, ref.operation_id, ref.area)
    if row is None:
        raise NotFound(f"area {ref.area!r} does not exist")
    return row


async def _is_member(conn: AsyncConnection, ref: AreaRef, device_id: str) -> bool:
    return await store.is_member(conn, ref.operation_id, ref.area, device_id)


async def _reader(
    ctx: Context, conn: AsyncConnection, principal: Principal, ref: AreaRef
) -> Membership:
    """A device that may read the area: its organisation's role reads it and it is a member."""
    member = await membership(ctx, conn, principal, ref.operation_id)
    member.check_area(ref.area)
    if not await _is_member(conn, ref, principal.device_id):
        raise Forbidden(f"device {principal.device_id!r} is not a member of area {ref.area!r}")
    return member


def _append_event(
    tx: Tx, ref: AreaRef, seq: int, kind: str, device_id: str, body: bytes, **extra: Any
) -> dict[str, Any]:
    return {
        "operation_id": ref.operation_id,
        "area": ref.area,
        "seq": seq,
        "kind": kind,
        "device_id": device_id,
        "body": body,
        "created_at": tx.now,
        "epoch": extra.get("epoch"),
        "message_id": extra.get("message_id"),
    }


def _message_rows(
    tx: Tx, ref: AreaRef, seq: int, device_id: str, envelope: Envelope, body: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored message's entry row and its audit entry."""
    message_id = str(envelope.header.message_id)
    row = _append_event(tx, ref, seq, "message", device_id, body,
                        epoch=envelope.header.epoch, message_id=message_id)  # fmt: skip
    audit_row = {
        "event": "message",
        "operation": ref.operation_id,
        "area": ref.area,
        "seq": seq,
        "message_id": message_id,
        "sender": device_id,
        "sha256": b64e(hashlib.sha256(body).digest()),
    }
    return row, audit_row


GENERIC_PLANS_FROM = 64
"""Rows from which a transaction's inserts switch PostgreSQL to generic plans. Single posts
commit in groups of about half the requests in flight (16 for 32): on PostgreSQL they are
bound by the group's round trips, and one less (``SET LOCAL``) gave ~10 % more posts a second
for the same database CPU per post (design §13)."""


async def _advance(
    tx: Tx, ref: AreaRef, rows: list[dict[str, Any]], audited: list[dict[str, Any]]
) -> None:
    """Store the transaction's entries (in sequence order), move the area's sequence on and
    append the ``audited`` entries to the audit log — one statement on PostgreSQL
    (:func:`.entries.append_recorded`). Its look-ups are done: a batch's rows run on generic
    plans — not a group of single posts (:data:`GENERIC_PLANS_FROM`), where the round trip
    that switches plans costs more than planning its few rows."""
    if len(rows) >= GENERIC_PLANS_FROM:
        await generic_plans(tx.conn)
    leaves = audit.leaves_of(audited, tx.now, salt=True)
    await entries.append_recorded(tx.conn, ref.operation_id, ref.area, rows, leaves, tx.now)
    tx.publish(Event(ref.operation_id, ref.area, rows[-1]["seq"]))


# -- key packages ----------------------------------------------------------------------
async def post_key_package(ctx: Context, principal: Principal, ref: AreaRef, body: bytes) -> int:
    """A device asks to join an area; members see the package and may admit it."""
    try:
        package = KeyPackage.from_bytes(body)
    except CryptoError as exc:
        raise BadRequest(f"key_package: {exc}") from exc
    if package.device_id != principal.device_id:
        raise Forbidden("a device posts only its own key package")
    if (package.operation_id, package.area) != (ref.operation_id, ref.area):
        raise BadRequest("key_package: names another operation or area")
    async with ctx.transaction() as tx:
        member = await membership(ctx, tx.conn, principal, ref.operation_id)
        member.check_writable()
        member.check_area(ref.area)
        try:
            package.verify(member.charter, now=tx.now, revoked=await _revoked(tx.conn))
        except CryptoError as exc:
            raise InvalidSignature(f"key_package: {exc}") from exc
        area = await _lock_area(tx.conn, ref)
        seq = area.next_seq + 1
        await store.replace_key_package(
            tx.conn, ref.operation_id, ref.area, principal.device_id, body, seq, tx.now
        )
        row = _append_event(tx, ref, seq, "key-package", principal.device_id, body)
        audited = {
            "event": "key-package",
            "operation": ref.operation_id,
            "area": ref.area,
            "device": principal.device_id,
            "seq": seq,
        }
        await _advance(tx, ref, [row], [audited])
    return int(seq)


async def list_key_packages(ctx: Context, principal: Principal, ref: AreaRef) -> list[str]:
    """Pending key packages of an area, for members who admit devices."""
    async with ctx.engine.connect() as conn:
        await _reader(ctx, conn, principal, ref)
        bodies = await store.key_package_bodies(conn, ref.operation_id, ref.area)
        return [b64e(body) for body in bodies]


# -- commits ---------------------------------------------------------------------------
async def _revoked(conn: AsyncConnection) -> set[bytes]:
    return await identity_store.revoked_key_ids(conn)


async def post_commit(
    ctx: Context, principal: Principal, ref: AreaRef, body: bytes
) -> dict[str, int]:
    """Store the commit to the next epoch. Of concurrent commits for one epoch exactly one
    wins; the others get ``wrong_epoch`` and must rebuild on the new state."""
    try:
        commit = Commit.from_bytes(body)
    except CryptoError as exc:
        raise BadRequest(f"commit: {exc}") from exc
    if commit.committer != principal.device_id:
        raise Forbidden("a device posts only commits it signed itself")
    if commit.instance_id != ctx.instance.instance_id:
        raise BadRequest("commit: belongs to another instance")
    if (commit.operation_id, commit.area) != (ref.operation_id, ref.area):
        raise BadRequest("commit: names another operation or area")
    async with ctx.transaction() as tx:
        member = await membership(ctx, tx.conn, principal, ref.operation_id)
        member.check_writable()
        member.check_area(ref.area)
        area = await _lock_area(tx.conn, ref)
        expected = 0 if area.epoch is None else area.epoch + 1
        if commit.epoch != expected:
            raise WrongEpoch(
                f"commit for epoch {commit.epoch}; the area expects {expected}",
                expected_epoch=expected,
            )
        state = GroupState.from_bytes(area.state) if area.state is not None else None
        try:
            new_state = apply_commit(
                state,
                commit,
                member.charter,
                now=tx.now,
                revoked=await _revoked(tx.conn),
                instance_id=ctx.instance.instance_id,
            )
        except SignatureError as exc:
            raise InvalidSignature(f"commit: {exc}") from exc
        except CryptoError as exc:
            raise BadRequest(f"commit: {exc}") from exc
        await _store_commit(tx, ref, area, commit, new_state, body)
    return {"epoch": commit.epoch, "seq": area.next_seq + 1}


async def _store_commit(
    tx: Tx, ref: AreaRef, area: Any, commit: Commit, state: GroupState, body: bytes
) -> None:
    seq = area.next_seq + 1
    await store.insert_commit(
        tx.conn,
        ref.operation_id,
        ref.area,
        epoch=commit.epoch,
        seq=seq,
        hash=commit.hash,
        sealed=[(s.device_id, s.ciphertext) for s in commit.sealed],
    )
    await store.set_roster(tx.conn, ref.operation_id, ref.area, [e.device_id for e in state.roster])
    added = [p.device_id for p in commit.adds]
    if added:
        await store.delete_key_packages(tx.conn, ref.operation_id, ref.area, added)
    await store.set_group_state(tx.conn, ref.operation_id, ref.area, commit.epoch, state.to_bytes())
    row = _append_event(tx, ref, seq, "commit", commit.committer, body, epoch=commit.epoch)
    audited = {
        "event": "commit",
        "operation": ref.operation_id,
        "area": ref.area,
        "epoch": commit.epoch,
        "committer": commit.committer,
        "added": added,
        "removed": list(commit.removes),
        "hash": b64e(commit.hash),
        "seq": seq,
    }
    await _advance(tx, ref, [row], [audited])


async def list_commits(
    ctx: Context, principal: Principal, ref: AreaRef, after_epoch: int
) -> list[str]:
    """Commits after ``after_epoch`` (-1 for all), oldest first, for members to validate."""
    async with ctx.engine.connect() as conn:
        await _reader(ctx, conn, principal, ref)
        bodies = await entries.commit_bodies(conn, ref.operation_id, ref.area, after_epoch)
        return [b64e(body) for body in bodies]


# -- messages --------------------------------------------------------------------------
def parse_envelopes(
    raw: Sequence[str], ctx: Context, principal: Principal, ref: AreaRef
) -> list[tuple[Envelope, bytes]]:
    parsed, seen = [], set()
    for index, text in enumerate(raw):
        try:
            body = b64d(text, field=f"envelopes[{index}]")
            envelope = Envelope.from_bytes(body)
        except CryptoError as exc:
            raise BadRequest(f"envelopes[{index}]: {exc}", index=index) from exc
        header = envelope.header
        if header.instance_id != ctx.instance.instance_id:
            raise BadRequest(f"envelopes[{index}]: belongs to another instance", index=index)
        if (header.operation_id, header.area) != (ref.operation_id, ref.area):
            raise BadRequest(
                f"envelopes[{index}]: header names another operation or area", index=index
            )
        if header.sender != principal.device_id:
            raise Forbidden(
                f"envelopes[{index}]: sender is not the authenticated device", index=index
            )
        if header.message_id in seen:
            raise BadRequest(f"envelopes[{index}]: message id repeated in the batch", index=index)
        seen.add(header.message_id)
        parsed.append((envelope, body))
    return parsed


async def post_messages(
    ctx: Context, principal: Principal, ref: AreaRef, raw: Sequence[str]
) -> list[int]:
    """Store a batch of envelopes all or nothing and return their sequence numbers.

    Message ids are idempotency keys of the sending device in the area: an envelope it
    already stored with the same bytes gets its original number back and is not stored
    again; the same id with other bytes is a conflict. Another device's use of an id blocks
    nothing, so no one can occupy the ids a member will use.
    """
    if not raw:
        raise BadRequest("envelopes: expected at least one envelope")
    if len(raw) > ctx.settings.max_batch:
        raise PayloadTooLarge(f"envelopes: at most {ctx.settings.max_batch} per batch")
    return await store_envelopes(ctx, principal, ref, parse_envelopes(raw, ctx, principal, ref))


async def store_envelopes(
    ctx: Context, principal: Principal, ref: AreaRef, parsed: list[tuple[Envelope, bytes]]
) -> list[int]:
    """Store envelopes already parsed (:func:`parse_envelopes`) in one transaction of their own.

    Only envelopes whose counter is not above the sender's last one can be stored already (a
    sender's counters rise), so only their ids are looked up. An envelope with a new counter
    under an id the sender used is caught by the unique key at insert: the batch is then
    judged again with every id looked up, which names it as the conflict it is.
    """
    try:
        return await _store_envelopes(ctx, principal, ref, parsed, look_up_all=False)
    except IntegrityError:
        return await _store_envelopes(ctx, principal, ref, parsed, look_up_all=True)


async def _store_envelopes(
    ctx: Context,
    principal: Principal,
    ref: AreaRef,
    parsed: list[tuple[Envelope, bytes]],
    *,
    look_up_all: bool,
) -> list[int]:
    async with ctx.transaction() as tx:
        member = await membership(ctx, tx.conn, principal, ref.operation_id)
        member.check_writable()
        member.check_area(ref.area, post=True)
        key = await _sender_key(tx.conn, principal.device_id)
        area = await _lock_area(tx.conn, ref)
        if not await _is_member(tx.conn, ref, principal.device_id):
            raise Forbidden(f"device {principal.device_id!r} is not a member of area {ref.area!r}")
        last = await _last_counter(tx.conn, ref, principal.device_id)
        wanted = [
            str(e.header.message_id) for e, _ in parsed if look_up_all or e.header.counter <= last
        ]
        existing = await entries.by_sender_message_ids(
            tx.conn, ref.operation_id, ref.area, principal.device_id, wanted
        ) if wanted else {}  # fmt: skip
        seqs, rows, audit_rows, seq = [], [], [], area.next_seq
        for index, (envelope, body) in enumerate(parsed):
            message_id = str(envelope.header.message_id)
            if message_id in existing:
                seqs.append(_idempotent(existing[message_id], body, index))
                continue
            _check_new(envelope, area.epoch, key, index)
            last = _check_counter(envelope, last, index)
            seq += 1
            seqs.append(seq)
            row, audit_row = _message_rows(tx, ref, seq, principal.device_id, envelope, body)
            rows.append(row)
            audit_rows.append(audit_row)
        if rows:
            await _advance(tx, ref, rows, audit_rows)
    return seqs


async def _sender_key(conn: AsyncConnection, device_id: str) -> VerifyKey:
    return VerifyKey(await identity_store.device_signing_key(conn, device_id))


def _idempotent(row: Any, body: bytes, index: int) -> int:
    """The stored number of an envelope the sender already posted in the area; the same id
    with other bytes is the sender's own conflict."""
    if row.body != body:
        raise Conflict(
            f"envelopes[{index}]: message id already used for another message", index=index
        )
    return int(row.seq)


def _check_new(
    envelope: Envelope,
    epoch: int | None,
    key: VerifyKey,
    index: int,
    checked: CheckedSignature | None = None,
) -> None:
    """The envelope is of the area's epoch and signed by ``key`` — ``checked``: its signature
    as a child process verified it, taken only if it covers this envelope under this key."""
    if epoch is None or envelope.header.epoch != epoch:
        raise WrongEpoch(
            f"envelopes[{index}]: epoch {envelope.header.epoch} is not the "
            f"area's current epoch {epoch}",
            index=index,
            current_epoch=epoch,
        )
    if checked is not None and checked.covers(envelope, key.raw):
        return
    try:
        envelope.verify_signature(key)
    except CryptoError as exc:
        raise InvalidSignature(f"envelopes[{index}]: {exc}", index=index) from exc


async def _last_counter(conn: AsyncConnection, ref: AreaRef, device_id: str) -> int:
    """The counter of the device's latest message in the area (0 before its first)."""
    body = await entries.latest_message_of(conn, ref.operation_id, ref.area, device_id)
    return Envelope.header_of(body).counter if body is not None else 0


def _check_counter(envelope: Envelope, last: int, index: int) -> int:
    """A sender's counters rise in an area, by at most MAX_COUNTER_JUMP (design §12)."""
    counter = envelope.header.counter
    if counter <= last:
        raise CounterRefused(
            f"envelopes[{index}]: counter {counter} is not above this device's last counter "
            f"{last} in the area",
            index=index,
            last_counter=last,
        )
    if counter - last > MAX_COUNTER_JUMP:
        raise CounterRefused(
            f"envelopes[{index}]: counter {counter} jumps more than {MAX_COUNTER_JUMP} "
            f"above this device's last counter {last}",
            index=index,
            last_counter=last,
        )
    return counter


# -- reading ---------------------------------------------------------------------------
def event_json(row: Any) -> dict[str, Any]:
    """The wire form of one stored entry."""
    return {
        "operation_id": row.operation_id,
        "area": row.area,
        "seq": row.seq,
        "kind": row.kind,
        "device_id": row.device_id,
        "epoch": row.epoch,
        "message_id": row.message_id,
        "body": b64e(row.body),
        "created_at": row.created_at,
    }


async def list_events(
    ctx: Context, principal: Principal, ref: AreaRef, after: int, limit: int
) -> list[dict[str, Any]]:
    """An area's entries after sequence number ``after``, in order."""
    async with ctx.engine.connect() as conn:
        await _reader(ctx, conn, principal, ref)
        rows = await entries_after(conn, ref.operation_id, ref.area, after, limit)
        return [event_json(row) for row in rows]


async def readable_areas(
    ctx: Context, conn: AsyncConnection, principal: Principal
) -> list[AreaRef]:
    """Areas whose roster holds the device and whose charter still lets its role read."""
    return (await readable_areas_of(ctx, conn, [principal]))[principal.device_id]


async def readable_areas_of(
    ctx: Context, conn: AsyncConnection, principals: Sequence[Principal]
) -> dict[str, list[AreaRef]]:
    """:func:`readable_areas` of many devices, by device id: one roster query for all, and one
    membership read per operation and organisation (a role's read right depends on nothing
    else), so a node re-checks all of its streams in a few queries."""
    rostered = await store.areas_of_devices(conn, [p.device_id for p in principals])
    members: dict[tuple[str, str], Membership | None] = {}
    found: dict[str, list[AreaRef]] = {}
    for principal in principals:
        refs = []
        for operation_id, area in rostered[principal.device_id]:
            key = (operation_id, principal.org_id)
            if key not in members:
                try:
                    members[key] = await membership(ctx, conn, principal, operation_id)
                except (Forbidden, NotFound):
                    members[key] = None
            if (member := members[key]) is not None and _may_read(member, area):
                refs.append(AreaRef(operation_id, area))
        found[principal.device_id] = refs
    return found


def _may_read(member: Membership, area: str) -> bool:
    try:
        member.check_area(area)
    except (Forbidden, NotFound):
        return False
    return True


def encode_cursor(positions: dict[AreaRef, int]) -> str:
    return encode_cursor_of(cursor_order(positions), positions)


def cursor_order(refs: Iterable[AreaRef]) -> list[tuple[AreaRef, str]]:
    """The areas in a cursor's order, each with the text its position follows: a stream
    computes this once per change of its areas, and :func:`encode_cursor_of` at each event."""
    ordered = sorted(refs, key=lambda ref: (ref.operation_id, ref.area))
    return [(ref, f"{ref.operation_id}\x1f{ref.area}\x1f") for ref in ordered]


def encode_cursor_of(order: list[tuple[AreaRef, str]], positions: dict[AreaRef, int]) -> str:
    """The cursor of the areas in ``order`` (from :func:`cursor_order`) at ``positions``."""
    text = "\x1e".join([prefix + str(positions.get(ref, 0)) for ref, prefix in order])
    return b64e(text.encode())


def decode_cursor(cursor: str) -> dict[AreaRef, int]:
    if not cursor:
        return {}
    try:
        text = b64d(cursor, field="cursor", max_len=1 << 20).decode()
        positions = {}
        for part in filter(None, text.split("\x1e")):
            operation_id, area, seq = part.split("\x1f")
            position = int(seq)
            if not 0 <= position <= MAX_SEQ:  # out of range for the database's BIGINT
                raise ValueError(f"position {position} out of range")
            positions[AreaRef(operation_id, area)] = position
        return positions
    except (CryptoError, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("cursor: not a cursor this server issued") from exc


async def sync(ctx: Context, principal: Principal, cursor: str, limit: int) -> dict[str, Any]:
    """Everything new in all of the device's areas since ``cursor``, at most ``limit`` entries.

    The returned cursor covers every area returned; pass it back to continue.
    """
    positions = decode_cursor(cursor)
    async with ctx.engine.connect() as conn:
        refs = await readable_areas(ctx, conn, principal)
        out: list[dict[str, Any]] = []
        for ref in refs:
            if len(out) >= limit:
                break
            after = positions.get(ref, 0)
            rows = await entries_after(conn, ref.operation_id, ref.area, after, limit - len(out))
            batch = [event_json(row) for row in rows]
            out.extend(batch)
            positions[ref] = batch[-1]["seq"] if batch else after
    keep = {ref: seq for ref, seq in positions.items() if ref in set(refs)}
    more = len(out) >= limit
    return {"events": out, "cursor": encode_cursor(keep), "more": more}
