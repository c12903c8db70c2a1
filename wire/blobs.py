"""Attachment blob and receipt bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .base import Request, Response
from .scalars import AREA_NAME, B64, B64_IN, ID, INDEX, TIME, UUID

__all__ = [
    "Blob",
    "BlobCreated",
    "BlobProgress",
    "BlobRequest",
    "ChunkQuery",
    "OrgReceipts",
    "Receipt",
    "ReceiptRequest",
    "ReceiptStatus",
    "ReceiptStatusQuery",
]

RECEIVED = Annotated[int, Meta(ge=0, description="bytes stored so far; resume here")]


class BlobRequest(Request, frozen=True):
    """An attachment blob's declared size and digest (the size limit is a setting)."""

    size: Annotated[int, Meta(ge=1, description="ciphertext bytes")]
    sha256: Annotated[
        B64_IN, Meta(min_length=43, max_length=43, description="SHA-256 of the ciphertext")
    ]


class BlobCreated(Response, frozen=True):
    """The declared blob, empty so far."""

    blob_id: UUID
    received: Literal[0]


class ChunkQuery(Request, frozen=True):
    """Where an uploaded chunk starts."""

    offset: Annotated[INDEX, Meta(description="byte offset of the chunk")]


class BlobProgress(Response, frozen=True):
    """How much of a blob is stored."""

    blob_id: UUID
    received: RECEIVED
    complete: bool


class Blob(Response, frozen=True):
    """A blob's metadata and upload progress."""

    blob_id: UUID
    operation_id: ID
    area: AREA_NAME
    size: Annotated[int, Meta(ge=1, description="declared ciphertext size")]
    sha256: Annotated[B64, Meta(description="declared SHA-256 of the ciphertext")]
    received: RECEIVED
    complete: bool


class ReceiptRequest(Request, frozen=True):
    """A signed read or ack receipt."""

    receipt: Annotated[B64_IN, Meta(description="the signed receipt statement")]


class Receipt(Response, frozen=True):
    """A stored receipt."""

    operation_id: ID
    area: AREA_NAME
    message_id: UUID
    sender: Annotated[ID, Meta(description="the device that sent the message")]
    device_id: ID
    org_id: ID
    kind: Literal["read", "ack"]
    signed_at: TIME
    received_at: TIME
    receipt: Annotated[B64, Meta(description="the signed statement")]
    created: Annotated[bool, Meta(description="false when it repeats a stored one")]


class OrgReceipts(Response, frozen=True):
    """One organisation's readers and acknowledgers of a message."""

    org_id: ID
    role: str
    members: Annotated[
        list[ID], Meta(description="the organisation's devices in the area's roster")
    ]
    read: Annotated[list[ID], Meta(description="devices that have read (or acknowledged)")]
    acked: Annotated[list[ID], Meta(description="devices that have acknowledged")]
    read_at: dict[str, TIME]
    acked_at: dict[str, TIME]


class ReceiptStatusQuery(Request, frozen=True):
    """Which sender's message: message ids are unique per operation, area and sender."""

    sender: Annotated[ID, Meta(description="the device that sent the message")]


class ReceiptStatus(Response, frozen=True):
    """Per organisation, who has read and acknowledged a message."""

    operation_id: ID
    area: AREA_NAME
    message_id: UUID
    sender: ID
    requires_ack: bool
    organisations: list[OrgReceipts]
    pending_ack_orgs: Annotated[
        list[ID], Meta(description="organisations without an acknowledgement")
    ]
    receipts: Annotated[
        list[B64],
        Meta(
            description="every signed receipt statement stored for the message, for the "
            "client to verify against the senders' roster keys"
        ),
    ]
