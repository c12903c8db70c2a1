"""Read and acknowledgement receipts (design §7).

A device signs a ``read`` or ``ack`` statement (:class:`opseal.crypto.statements.Receipt`) for
a message of an area it reads, naming the message as the server keeps it unique: operation,
area, sending device and message id (design §15 "Receipts name the sender"; a statement of the
first encoding, which names no sender, is refused). The server checks it against the device's
registered key, stores it once per (message, device, kind) — a repeat answers the stored
receipt — and appends it to the area's gap-free sequence as a ``receipt`` entry, so members
receive it through sync and the stream. The entry carries the signed statement as its body and
no ``message_id`` (that column is the message's own); readers take the message from the
statement.

A coordinator asks, per message (sender and id), which organisations of the area's audience and
which of their devices have read and acknowledged it. An acknowledgement counts as a read. The
sender's own organisation is never listed as pending an acknowledgement. The answer also
carries every signed statement stored for the message, so the coordinator's client computes the
status itself from what it can verify rather than trusting this summary."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64e
from opseal.crypto.envelope import Envelope
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import MAX_CLOCK_SKEW
from opseal.crypto.keys import VerifyKey
from opseal.crypto.statements import Receipt

from ..errors import BadRequest, Forbidden, InvalidSignature, NotFound
from ..storage import areas as area_store
from ..storage import entries
from ..storage import identity as identity_store
from ..storage import receipts as store
from ..storage.receipts import MessageKey
from .areas import AreaRef, _advance, _append_event, _lock_area, _reader, _sender_key
from .base import Context, Principal, Tx
from .operations import membership

__all__ = ["post_receipt", "receipt_status"]


# -- posting ---------------------------------------------------------------------------
def _parse(ctx: Context, principal: Principal, body: bytes) -> Receipt:
    try:
        receipt = Receipt.from_bytes(body)
    except CryptoError as exc:
        raise BadRequest(f"receipt: {exc}", field="receipt") from exc
    if receipt.device_id != principal.device_id:
        raise Forbidden("a device posts only its own receipts")
    if receipt.instance_id != ctx.instance.instance_id:
        raise BadRequest("receipt: belongs to another instance", field="receipt")
    if not receipt.sender_device_id:
        raise BadRequest(
            "receipt: names no sender (first encoding); sign it again naming the message's "
            "sending device",
            field="receipt",
        )
    return receipt


async def _message(conn: AsyncConnection, key: MessageKey) -> Any:
    row = await entries.message(conn, key.operation_id, key.area, key.sender_id, key.message_id)
    if row is None:
        raise NotFound(
            f"message {key.message_id} of device {key.sender_id} does not exist in area "
            f"{key.area!r}"
        )
    return row


def _receipt_json(row: Any, created: bool) -> dict[str, Any]:
    receipt = Receipt.from_bytes(row.statement)
    return {
        "operation_id": receipt.operation_id,
        "area": receipt.area,
        "message_id": row.message_id,
        "sender": row.sender_id,
        "device_id": row.device_id,
        "org_id": row.org_id,
        "kind": row.kind,
        "signed_at": receipt.signed_at,
        "received_at": row.created_at,
        "receipt": b64e(row.statement),
        "created": created,
    }


async def post_receipt(ctx: Context, principal: Principal, body: bytes) -> dict[str, Any]:
    """Verify and store a receipt; ``created`` is false when it repeats a stored one."""
    receipt = _parse(ctx, principal, body)
    ref = AreaRef(receipt.operation_id, receipt.area)
    key = MessageKey(ref.operation_id, ref.area, receipt.sender_device_id, str(receipt.message_id))
    async with ctx.transaction() as tx:
        member = await _reader(ctx, tx.conn, principal, ref)
        member.check_writable()
        await _message(tx.conn, key)
        _verify(receipt, await _sender_key(tx.conn, principal.device_id), tx.now)
        area = await _lock_area(tx.conn, ref)  # also serialises concurrent repeats
        stored = await store.get(tx.conn, key, principal.device_id, receipt.kind)
        if stored is not None:
            return _receipt_json(stored, created=False)
        await _store(tx, principal, ref, key, receipt, body, area.next_seq + 1)
        stored = await store.get(tx.conn, key, principal.device_id, receipt.kind)
    return _receipt_json(stored, created=True)


def _verify(receipt: Receipt, key: VerifyKey, now: int) -> None:
    try:
        receipt.verify(key)
    except CryptoError as exc:
        raise InvalidSignature(f"receipt: {exc}", field="receipt") from exc
    if receipt.signed_at > now + MAX_CLOCK_SKEW:
        raise BadRequest("receipt: signed_at lies in the future", field="receipt")


async def _store(
    tx: Tx,
    principal: Principal,
    ref: AreaRef,
    key: MessageKey,
    receipt: Receipt,
    body: bytes,
    seq: int,
) -> None:
    await store.insert_receipt(
        tx.conn,
        key,
        principal.device_id,
        receipt.kind,
        org_id=principal.org_id,
        statement=body,
        now=tx.now,
    )
    row = _append_event(tx, ref, seq, "receipt", principal.device_id, body)
    audited = {
        "event": "receipt",
        "operation": ref.operation_id,
        "area": ref.area,
        "message_id": key.message_id,
        "sender": key.sender_id,
        "kind": receipt.kind,
        "device": principal.device_id,
        "seq": seq,
    }
    await _advance(tx, ref, [row], [audited])


# -- status for coordinators -----------------------------------------------------------
async def receipt_status(
    ctx: Context, principal: Principal, ref: AreaRef, message_id: str, sender: str
) -> dict[str, Any]:
    """Per organisation that reads the area: which devices have read and acknowledged the
    sender's message ``message_id``."""
    try:
        message_id = str(uuid.UUID(message_id))
    except ValueError as exc:
        raise BadRequest("message_id: expected a UUID", field="message_id") from exc
    async with ctx.engine.connect() as conn:
        member = await membership(ctx, conn, principal, ref.operation_id)
        if member.role != "coordinator":
            raise Forbidden("only a coordinator sees who has read and acknowledged a message")
        member.check_area(ref.area)
        key = MessageKey(ref.operation_id, ref.area, sender, message_id)
        message = await _message(conn, key)
        rows = await store.for_message(conn, key)
        roster = await area_store.roster_orgs(conn, ref.operation_id, ref.area)
        sender_org = await identity_store.device_org(conn, message.device_id)
    header = Envelope.header_of(message.body)
    orgs = _by_org(member.charter, ref.area, rows, roster)
    return {
        "operation_id": ref.operation_id,
        "area": ref.area,
        "message_id": message_id,
        "sender": message.device_id,
        "requires_ack": header.requires_ack,
        "organisations": orgs,
        "pending_ack_orgs": [
            o["org_id"] for o in orgs if not o["acked"] and o["org_id"] != sender_org
        ],
        "receipts": [b64e(row.statement) for row in rows],
    }


def _first_times(rows: Iterable[Any], kinds: set[str]) -> dict[str, int]:
    times: dict[str, int] = {}
    for row in rows:
        if row.kind in kinds:
            times[row.device_id] = min(row.created_at, times.get(row.device_id, row.created_at))
    return times


def _by_org(
    charter: Charter, area: str, rows: list[Any], roster: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    out = []
    for org in charter.members:
        if not charter.may_read(org.role, area):
            continue
        mine = [row for row in rows if row.org_id == org.organisation_id]
        read_at = _first_times(mine, {"read", "ack"})  # an acknowledgement implies a read
        acked_at = _first_times(mine, {"ack"})
        out.append(
            {
                "org_id": org.organisation_id,
                "role": org.role,
                "members": sorted(d for d, o in roster if o == org.organisation_id),
                "read": sorted(read_at),
                "acked": sorted(acked_at),
                "read_at": read_at,
                "acked_at": acked_at,
            }
        )
    return out
