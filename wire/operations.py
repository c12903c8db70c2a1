"""Operation, charter and area bodies (key packages, commits, messages, events, sync)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from .base import Request, Response
from .scalars import AREA_NAME, B64, B64_IN, ID, INDEX, MAX_INDEX, PHASE, SEQ, TIME, UUID

__all__ = [
    "AreaState",
    "BatchStored",
    "CharterHistory",
    "CharterPublished",
    "CharterRequest",
    "CommitRequest",
    "CommitStored",
    "Commits",
    "CommitsQuery",
    "CreateOperation",
    "Event",
    "Events",
    "EventsQuery",
    "KeyPackageRequest",
    "KeyPackages",
    "MessageBatch",
    "MessageRequest",
    "Operation",
    "OperationDetail",
    "Operations",
    "PhaseRequest",
    "PhaseSet",
    "Stored",
    "StreamQuery",
    "SyncPage",
    "SyncQuery",
]

CHARTER = Annotated[B64_IN, Meta(description="the signed charter encoding")]
ENVELOPE = Annotated[B64_IN, Meta(description="a signed, encrypted message envelope")]
RETENTION = Annotated[int, Meta(ge=1, le=3650, description="days the archived operation is kept")]
PAGE_LIMIT = Annotated[int, Meta(ge=1, le=5000, description="most entries to return")]


# -- operations and charters -----------------------------------------------------------
class CreateOperation(Request, frozen=True):
    """A coordinator's charter version 1."""

    charter: CHARTER
    retention_days: RETENTION = 365


class CharterRequest(Request, frozen=True):
    """The next charter version."""

    charter: CHARTER


class CharterPublished(Response, frozen=True):
    """The operation and its new charter version."""

    operation_id: ID
    charter_version: Annotated[int, Meta(ge=1)]


class Operation(Response, frozen=True):
    """An operation as a member organisation sees it."""

    operation_id: ID
    code: Annotated[str, Meta(description="short code, e.g. STOP V")]
    name: Annotated[str, Meta(description="operation name")]
    phase: PHASE
    starts_at: TIME
    ends_at: TIME
    charter_version: Annotated[int, Meta(ge=1)]
    coordinator_org: ID
    role: Annotated[str, Meta(description="the device organisation's role in the charter")]
    retention_days: RETENTION


class AreaState(Response, frozen=True):
    """An area the device's role reads."""

    area: AREA_NAME
    epoch: (
        Annotated[int, Meta(ge=0, description="current epoch; null before the area is created")]
        | None
    )
    last_seq: Annotated[int, Meta(ge=0, description="number of the area's newest entry")]


class OperationDetail(Operation, frozen=True):
    """An operation with the areas the device's role reads."""

    areas: list[AreaState]


class Operations(Response, frozen=True):
    """Operations whose charter lists the device's organisation."""

    operations: list[Operation]


class CharterHistory(Response, frozen=True):
    """Every charter version, oldest first."""

    versions: list[Annotated[B64, Meta(description="signed charter")]]


class PhaseRequest(Request, frozen=True):
    """The phase to move the operation to."""

    phase: PHASE


class PhaseSet(Response, frozen=True):
    """The operation's phase now."""

    phase: PHASE


# -- areas -----------------------------------------------------------------------------
class KeyPackageRequest(Request, frozen=True):
    """A device's request to join an area."""

    key_package: Annotated[B64_IN, Meta(description="signed key package")]


class Stored(Response, frozen=True):
    """The stored entry's number."""

    seq: SEQ


class KeyPackages(Response, frozen=True):
    """Pending key packages."""

    key_packages: list[Annotated[B64, Meta(description="package")]]


class CommitRequest(Request, frozen=True):
    """The commit to the area's next epoch."""

    commit: Annotated[B64_IN, Meta(description="signed commit")]


class CommitStored(Response, frozen=True):
    """The stored commit's epoch and number."""

    epoch: Annotated[int, Meta(ge=0)]
    seq: SEQ


class CommitsQuery(Request, frozen=True):
    """Which commits to list."""

    after_epoch: Annotated[
        int, Meta(ge=-1, le=MAX_INDEX, description="only commits of later epochs; -1 for all")
    ] = -1


class Commits(Response, frozen=True):
    """Commits, oldest first."""

    commits: list[Annotated[B64, Meta(description="signed commit")]]


class MessageRequest(Request, frozen=True):
    """One envelope."""

    envelope: ENVELOPE


class MessageBatch(Request, frozen=True):
    """A batch of envelopes, stored all or nothing.

    The batch limit is a setting: the server checks it (413 payload_too_large) and the
    document states it as ``maxItems``.
    """

    envelopes: Annotated[
        list[ENVELOPE],
        Meta(min_length=1, description="a larger batch is refused whole: 413 payload_too_large"),
    ]


class BatchStored(Response, frozen=True):
    """One number per envelope, in order."""

    seqs: list[SEQ]


class Event(Response, frozen=True):
    """An entry of an area: a message, commit, key package or receipt."""

    operation_id: ID
    area: AREA_NAME
    seq: SEQ
    kind: Literal["message", "commit", "key-package", "receipt"]
    device_id: ID
    epoch: Annotated[int, Meta(ge=0, description="epoch of a message or commit")] | None
    message_id: UUID | None
    body: Annotated[B64, Meta(description="the stored envelope, commit, key package or receipt")]
    created_at: TIME


class EventsQuery(Request, frozen=True):
    """Which entries of an area to list."""

    after: Annotated[INDEX, Meta(description="last number already seen")] = 0
    limit: PAGE_LIMIT = 500


class Events(Response, frozen=True):
    """An area's entries, in order."""

    events: list[Event]


class SyncQuery(Request, frozen=True):
    """Where a sync continues."""

    cursor: Annotated[B64, Meta(description="a cursor from an earlier page; empty to start")] = ""
    limit: PAGE_LIMIT = 1000


class SyncPage(Response, frozen=True):
    """A page of entries from all of the device's areas."""

    events: list[Event]
    cursor: Annotated[B64, Meta(description="pass back to continue")]
    more: Annotated[bool, Meta(description="the limit was reached")]


class StreamQuery(Request, frozen=True):
    """Where a stream resumes."""

    cursor: Annotated[B64, Meta(description="the last cursor processed; empty to start")] = ""
