"""``Receipts``: signed acknowledgements of verified messages (design §5, §15).

A receipt is signed with the device key and names the message it acknowledges; only a
message this device verified can be acknowledged or have its receipts listed. Who has read and
acknowledged a message is computed here, not taken from the server: every signed statement the
server serves is verified against its device's key in the area's verified rosters, and the
organisations that read the area come from the verified charter. Where the server's own
summary claims more or other than the verified statements show, each difference becomes an
``acks-unverified`` warning. It depends on the session, the store, the device identity, a
clock and the verified charters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import DeviceIdentity, GroupState, RosterEntry
from opseal.crypto.statements import Receipt, ReceiptGossip
from opseal.wire.blobs import ReceiptStatus

from .errors import ClientError
from .ports import Charters, Clock
from .session import Session
from .store import Store, StoredMessage

__all__ = ["Receipts"]


class Receipts:
    """Acknowledges verified messages and lists who acknowledged them."""

    def __init__(
        self,
        session: Session,
        store: Store,
        identity: DeviceIdentity,
        instance_id: str,
        clock: Clock,
        charters: Charters,
        gossip: Callable[[str, str], ReceiptGossip | None] = lambda op, area: None,
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._clock, self._charters = instance_id, clock, charters
        self._gossip = gossip

    async def ack(self, message_id: str, kind: str = "ack") -> None:
        stored = self._store.message(message_id)
        if stored is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        receipt = Receipt.create(
            self._identity.signing_key,
            instance_id=self._instance_id,
            operation_id=stored.op,
            area=stored.area,
            message_id=uuid.UUID(message_id),
            kind=kind,
            device_id=self._identity.device_id,
            signed_at=self._clock(),
            gossip=self._gossip(stored.op, stored.area),  # what this device sees (design §7)
        )
        await self._session.api.post_receipt(receipt.to_bytes())

    async def acks(self, message_id: str) -> dict[str, Any]:
        """Per organisation reading the area, which devices read and acknowledged the message,
        from the signed receipts this device verified; ``unverified`` lists where the server's
        summary claims otherwise (each also recorded as a warning)."""
        stored = self._store.message(message_id)
        if stored is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        served = await self._session.api.receipts(stored.op, stored.area, message_id)
        charter = await self._charters.charter(stored.op)
        rosters = self._rosters(stored.op, stored.area)
        receipts = self._verified(stored, served.receipts, rosters)
        status = _status(stored, charter, rosters, receipts)
        status["unverified"] = _disagreements(served, status)
        for problem in status["unverified"]:
            self._store.warn(stored.op, stored.area, stored.seq, "acks-unverified", problem)
        return status

    def _rosters(self, op: str, area: str) -> list[GroupState]:
        """The area's verified group states, oldest first."""
        return [GroupState.from_bytes(body) for _, body in self._store.states(op, area)]

    def _verified(
        self, message: StoredMessage, raw: list[str], rosters: list[GroupState]
    ) -> list[tuple[Receipt, RosterEntry]]:
        """The served statements that verify against their device's roster key and name this
        message; the others are recorded as warnings and left out."""
        keys = {e.device_id: e for state in rosters for e in state.roster}
        out = []
        for index, text in enumerate(raw):
            try:
                receipt = Receipt.from_bytes(b64d(text, field="receipts"))
                entry = keys.get(receipt.device_id)
                if entry is None:
                    raise ClientError(f"device {receipt.device_id!r} was never in the area")
                receipt.verify(entry.signing_key)
                _check_names(receipt, message, self._instance_id)
            except (CryptoError, ClientError) as exc:
                problem = f"receipt {index} for {message.message_id} refused: {exc}"
                self._store.warn(message.op, message.area, message.seq, "receipt-refused", problem)
                continue
            out.append((receipt, entry))
        return out


def _check_names(receipt: Receipt, message: StoredMessage, instance_id: str) -> None:
    names = (receipt.instance_id, receipt.operation_id, receipt.area, str(receipt.message_id))
    if names != (instance_id, message.op, message.area, message.message_id):
        raise ClientError("it names another message")


def _first(receipts: list[tuple[Receipt, RosterEntry]], kinds: set[str]) -> dict[str, int]:
    times: dict[str, int] = {}
    for receipt, entry in receipts:
        if receipt.kind in kinds:
            times[entry.device_id] = min(receipt.signed_at, times.get(entry.device_id, 2**63))
    return times


def _status(
    message: StoredMessage,
    charter: Charter,
    rosters: list[GroupState],
    receipts: list[tuple[Receipt, RosterEntry]],
) -> dict[str, Any]:
    latest = rosters[-1].roster if rosters else ()
    orgs = []
    for member in charter.members:
        if not charter.may_read(member.role, message.area):
            continue
        org = member.organisation_id
        mine = [(r, e) for r, e in receipts if e.organisation_id == org]
        read_at = _first(mine, {"read", "ack"})  # an acknowledgement implies a read
        acked_at = _first(mine, {"ack"})
        orgs.append(
            {
                "org_id": org,
                "role": member.role,
                "members": sorted(e.device_id for e in latest if e.organisation_id == org),
                "read": sorted(read_at),
                "acked": sorted(acked_at),
                "read_at": read_at,
                "acked_at": acked_at,
            }
        )
    return {
        "operation_id": message.op,
        "area": message.area,
        "message_id": message.message_id,
        "sender": message.sender,
        "requires_ack": message.requires_ack,
        "organisations": orgs,
        "pending_ack_orgs": [
            o["org_id"] for o in orgs if not o["acked"] and o["org_id"] != message.org
        ],
        "verified_receipts": len(receipts),
    }


def _disagreements(served: ReceiptStatus, verified: dict[str, Any]) -> list[str]:
    """Where the server's summary differs from the verified status, one line each."""
    mine = {o["org_id"]: o for o in verified["organisations"]}
    problems = []
    for org in served.organisations:
        ours = mine.get(org.org_id, {"acked": [], "read": []})
        for claimed, kind, verb in (
            (org.acked, "acked", "acknowledged"),
            (org.read, "read", "read"),
        ):
            extra = sorted(set(claimed) - set(ours[kind]))
            if extra:
                problems.append(
                    f"the server says {org.org_id} {verb} the message "
                    f"({', '.join(map(str, extra))}) but no verified receipt shows it"
                )
    served_pending = set(served.pending_ack_orgs)
    for org_id in sorted(set(verified["pending_ack_orgs"]) - served_pending):
        problems.append(
            f"the server does not list {org_id} as still to acknowledge, but it has not"
        )
    return problems
