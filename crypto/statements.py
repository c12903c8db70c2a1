"""Small signed statements: read / acknowledgement receipts, login proofs and enrolment-code
grants (design §3, §7, §9).

Receipts of the second encoding (``opseal/v1/receipt/2``) carry :class:`ReceiptGossip`: the
signer's epoch and epoch authenticator in the receipt's area and its latest verified audit
checkpoint, so members reading each other's receipts notice a fork or a split view of the
log (design §7). Receipts of the first encoding, without it, stay readable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from .encoding import Reader, Writer, decode_all, label, length_prefixed
from .errors import DecodeError
from .keys import SigningKey, VerifyKey

__all__ = ["RECEIPT_KINDS", "Receipt", "ReceiptGossip", "enrolment_code_message", "login_message"]

RECEIPT_KINDS = ("read", "ack")
_RECEIPT = label("receipt")
_RECEIPT_2 = label("receipt/2")
_LOGIN = label("login")
_ENROLMENT_CODE = label("enrolment-code")


def login_message(instance_id: str, device_id: str, challenge: bytes) -> bytes:
    """What a device signs to prove it holds its key when it logs in."""
    return Writer(_LOGIN).text(instance_id).text(device_id).blob(challenge).finish()


def enrolment_code_message(
    instance_id: str, organisation_id: str, code_hash: bytes, expires_at: int
) -> bytes:
    """What an organisation root signs to issue a one-time enrolment code for its own
    organisation: the server stores only ``code_hash``, the code never leaves the focal point."""
    w = Writer(_ENROLMENT_CODE).text(instance_id).text(organisation_id).blob(code_hash)
    return w.u64(expires_at).finish()


@dataclass(frozen=True)
class ReceiptGossip:
    """What the signer of a receipt sees: its epoch in the receipt's area with that epoch's
    authenticator, and the encoded audit checkpoint it last verified (empty if none)."""

    epoch: int
    authenticator: bytes
    checkpoint: bytes = b""

    def __post_init__(self) -> None:
        if len(self.authenticator) != 32:
            raise DecodeError("receipt: the epoch authenticator is 32 bytes")

    def _write(self, w: Writer) -> None:
        w.u64(self.epoch).blob(self.authenticator).blob(self.checkpoint)

    @classmethod
    def _read(cls, r: Reader) -> ReceiptGossip:
        return cls(
            r.u64("epoch"),
            r.blob(exact=32, field="authenticator"),
            r.blob(max_len=1024, field="checkpoint"),
        )


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
    gossip: ReceiptGossip | None = None
    """Second encoding only: what the signer saw (fork and split-view detection)."""

    def __post_init__(self) -> None:
        if self.kind not in RECEIPT_KINDS:
            raise DecodeError(f"receipt: kind must be one of {', '.join(RECEIPT_KINDS)}")

    @classmethod
    def create(cls, key: SigningKey, **fields: object) -> Receipt:
        draft = cls(**fields)  # type: ignore[arg-type]
        return replace(draft, signature=key.sign(draft.to_be_signed()))

    def to_be_signed(self) -> bytes:
        w = Writer(_RECEIPT_2 if self.gossip else _RECEIPT)
        w.text(self.instance_id).text(self.operation_id).text(self.area)
        w.blob(self.message_id.bytes).text(self.kind).text(self.device_id)
        w.u64(self.signed_at)
        if self.gossip is not None:
            self.gossip._write(w)
        return w.finish()

    def to_bytes(self) -> bytes:
        return self.to_be_signed() + length_prefixed(self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        second = bytes(data[: 4 + len(_RECEIPT_2)]) == length_prefixed(_RECEIPT_2)

        def read(r: Reader) -> Receipt:
            fields = (
                r.text(max_len=128, field="instance_id"),
                r.text(max_len=128, field="operation_id"),
                r.text(max_len=64, field="area"),
                uuid.UUID(bytes=r.blob(exact=16, field="message_id")),
                r.text(max_len=8, field="kind"),
                r.text(max_len=128, field="device_id"),
                r.u64("signed_at"),
            )
            gossip = ReceiptGossip._read(r) if second else None
            return cls(*fields, r.blob(exact=64, field="signature"), gossip)

        return decode_all(data, _RECEIPT_2 if second else _RECEIPT, "receipt", read)

    def verify(self, key: VerifyKey) -> None:
        key.verify(self.signature, self.to_be_signed(), what="receipt")
