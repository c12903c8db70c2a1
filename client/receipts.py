"""``Receipts``: signed acknowledgements of verified messages (design §5).

A receipt is signed with the device key and names the message it acknowledges; only a
message this device verified can be acknowledged or have its receipts listed. It depends on
the session, the store, the device identity and a clock.
"""

from __future__ import annotations

import uuid

from opseal.crypto.group import DeviceIdentity
from opseal.crypto.statements import Receipt
from opseal.wire.blobs import ReceiptStatus

from .errors import ClientError
from .ports import Clock
from .session import Session
from .store import Store

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
    ) -> None:
        self._session, self._store, self._identity = session, store, identity
        self._instance_id, self._clock = instance_id, clock

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
        )
        await self._session.api.post_receipt(receipt.to_bytes())

    async def acks(self, message_id: str) -> ReceiptStatus:
        stored = self._store.message(message_id)
        if stored is None:
            raise ClientError(f"message {message_id} is not among this device's verified messages")
        return await self._session.api.receipts(stored.op, stored.area, message_id)
