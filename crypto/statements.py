"""Small signed statements: read / acknowledgement receipts and login proofs (design §7, §9).

A receipt names its message by (operation, area, sending device, message id), the key under
which the server keeps a message unique (design §15 "Receipts name the sender"). Receipts of
the first encoding named no sender; they are still read (``sender_device_id == ""``,
:attr:`Receipt.encoding` 1) so stored ones keep verifying, and every receipt signed now uses
the second.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from .encoding import Reader, Writer, decode_all, label, length_prefixed
from .errors import DecodeError
from .keys import SigningKey, VerifyKey

__all__ = ["RECEIPT_KINDS", "Receipt", "login_message"]

RECEIPT_KINDS = ("read", "ack")
_RECEIPT_V1 = label("receipt")
_RECEIPT = label("receipt/2")
_LOGIN = label("login")


def login_message(instance_id: str, device_id: str, challenge: bytes) -> bytes:
    """What a device signs to prove it holds its key when it logs in."""
    return Writer(_LOGIN).text(instance_id).text(device_id).blob(challenge).finish()


@dataclass(frozen=True)
class Receipt:
    """A device's signed statement that it has read, or acknowledges, a message."""

    instance_id: str
    operation_id: str
    area: str
    message_id: uuid.UUID
    kind: str
    device_id: str
    signed_at: int
    signature: bytes = b""
    sender_device_id: str = ""
    """The device that sent the message; empty only in a receipt of the first encoding."""

    def __post_init__(self) -> None:
        if self.kind not in RECEIPT_KINDS:
            raise DecodeError(f"receipt: kind must be one of {', '.join(RECEIPT_KINDS)}")

    @property
    def encoding(self) -> int:
        """2 when the receipt names the message's sender, 1 for the first encoding."""
        return 2 if self.sender_device_id else 1

    @classmethod
    def create(cls, key: SigningKey, **fields: object) -> Receipt:
        draft = cls(**fields)  # type: ignore[arg-type]
        return replace(draft, signature=key.sign(draft.to_be_signed()))

    def to_be_signed(self) -> bytes:
        purpose = _RECEIPT if self.sender_device_id else _RECEIPT_V1
        w = Writer(purpose).text(self.instance_id).text(self.operation_id).text(self.area)
        if self.sender_device_id:
            w.text(self.sender_device_id)
        w.blob(self.message_id.bytes).text(self.kind).text(self.device_id)
        return w.u64(self.signed_at).finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        first = bytes(data[: 4 + len(_RECEIPT_V1)]) == length_prefixed(_RECEIPT_V1)

        def read(r: Reader) -> Receipt:
            instance_id = r.text(max_len=128, field="instance_id")
            operation_id = r.text(max_len=128, field="operation_id")
            area = r.text(max_len=64, field="area")
            sender = "" if first else r.text(max_len=128, field="sender_device_id")
            if not first and not sender:
                raise DecodeError("receipt: sender_device_id is empty")
            return cls(
                instance_id,
                operation_id,
                area,
                uuid.UUID(bytes=r.blob(exact=16, field="message_id")),
                r.text(max_len=8, field="kind"),
                r.text(max_len=128, field="device_id"),
                r.u64("signed_at"),
                r.blob(exact=64, field="signature"),
                sender,
            )

        return decode_all(data, _RECEIPT_V1 if first else _RECEIPT, "receipt", read)

    def verify(self, key: VerifyKey) -> None:
        key.verify(self.signature, self.to_be_signed(), what="receipt")
