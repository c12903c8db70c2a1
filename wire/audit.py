"""Audit-log bodies: checkpoints, entries, proofs and client declarations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from .base import Request, Response
from .scalars import B64, ID, INDEX, MAX_INDEX, TIME

__all__ = [
    "MAX_DECLARED_RECORDS",
    "MAX_PAGE",
    "AuditEntries",
    "AuditEntry",
    "Checkpoint",
    "ConsistencyProof",
    "ConsistencyQuery",
    "Declaration",
    "Declared",
    "EntriesQuery",
    "InclusionProof",
    "InclusionQuery",
]

MAX_PAGE = 1000
"""Most entries served by one request."""
MAX_DECLARED_RECORDS = 10**9
NODE = Annotated[B64, Meta(description="SHA-256 node hash")]


class Checkpoint(Response, frozen=True):
    """A signed checkpoint of the log."""

    log_id: ID
    size: Annotated[int, Meta(ge=0)]
    root: Annotated[B64, Meta(description="Merkle tree root (RFC 9162)")]
    timestamp: TIME
    checkpoint: Annotated[B64, Meta(description="the signed checkpoint encoding")]
    log_key: Annotated[B64, Meta(description="the instance's log key")]


class EntriesQuery(Request, frozen=True):
    """Which entries to list: start to end, exclusive."""

    start: INDEX = 0
    end: (
        Annotated[int, Meta(ge=0, le=MAX_INDEX + MAX_PAGE, description="default start + 1000")]
        | None
    ) = None


class AuditEntry(Response, frozen=True):
    """One log entry: metadata only, never content; ``entry`` is null when the reader may not
    see it (its leaf hash still counts in the tree)."""

    index: Annotated[int, Meta(ge=0)]
    entry: Annotated[
        dict[str, Any] | None,
        Meta(description="metadata only, never content; null: not for this reader"),
    ]
    leaf_hash: Annotated[B64, Meta(description="RFC 9162 leaf hash")]


class AuditEntries(Response, frozen=True):
    """Entries of the log and its size."""

    size: Annotated[int, Meta(ge=0, description="the log's size")]
    entries: list[AuditEntry]


class InclusionQuery(Request, frozen=True):
    """Which leaf, in which tree."""

    index: INDEX
    size: Annotated[int, Meta(ge=1, le=MAX_INDEX)]


class InclusionProof(Response, frozen=True):
    """Proof that leaf ``index`` is in the tree of ``size`` leaves."""

    index: INDEX
    size: INDEX
    proof: list[NODE]


class ConsistencyQuery(Request, frozen=True):
    """Which two tree sizes."""

    old: INDEX
    new: INDEX


class ConsistencyProof(Response, frozen=True):
    """Proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""

    old: INDEX
    new: INDEX
    proof: list[NODE]


class Declaration(Request, frozen=True):
    """A client's declaration of an action on decrypted content."""

    action: Annotated[Literal["export"], Meta(description="what the client did")]
    operation_id: ID
    records: Annotated[int, Meta(ge=0, le=MAX_DECLARED_RECORDS, description="how many records")]
    include_personal: bool


class Declared(Response, frozen=True):
    """The declaration's index in the log."""

    index: INDEX
