"""The audit log's read side: signed checkpoints, entries and Merkle proofs (design §7).

Every service appends leaves inside the transaction of the action they record
(:mod:`..storage.audit`); this module only reads them. Checkpoints are signed on demand: the
first request that finds the log larger than its newest stored checkpoint computes the root,
signs it with the instance's log key and stores it under its size. When two requests or nodes
race, the insert that loses reads the winner's checkpoint, so each size has exactly one.

**Need to know** (issue 12): a device reads the entries of its own organisation (enrolments,
logins, refusals of its devices), of the operations its organisation is a member of, and within
them only of the areas its role may read in the current charter; a client declaration is read by
its organisation and the operation's coordinators. Entries naming neither an operation nor an
organisation (instance events, refusals of strangers) are read by auditors only. Devices of the
organisations in the ``auditor_orgs`` setting (the instance auditor role, granted by the instance
admin) read everything. Hidden entries are served as their index and leaf hash only, so every
reader still recomputes the whole tree and checks it against the signed checkpoint; each leaf's
random salt (:mod:`..storage.audit`) keeps a hidden entry from being confirmed by guessing it.
Client addresses never enter a leaf: a refusal records :func:`address_tag`, a keyed hash.

Roots and proofs are computed from the leaf hashes of the range, read in one query and hashed
off the event loop. Reading the log is not itself audited: an auditor's polling would
otherwise grow the log it is checking.

The one write here is :func:`declare`: what a client does with decrypted content (e.g. an
export with personal data) happens where the server cannot see it, so the client declares it
first and the declaration becomes a ``client-declaration`` leaf (metadata only: the action,
the operation, a count, the device and its organisation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from opseal.crypto.encoding import b64e
from opseal.crypto.merkle import (
    Checkpoint,
    SubtreeHasher,
    consistency_proof_from,
    inclusion_proof_from,
    root_hash,
)

from ..errors import BadRequest, NotFound, Unavailable
from ..storage import audit as store
from ..storage import operations as operation_store
from ..storage.db import write_transaction
from .base import Context, Principal
from .operations import _charter, membership

__all__ = [
    "DECLARED_ACTIONS",
    "MAX_PAGE",
    "Scope",
    "address_tag",
    "checkpoint_age",
    "checkpoint_at",
    "consistency_proof",
    "declare",
    "entries",
    "inclusion_proof",
    "latest_checkpoint",
    "scope",
]

MAX_PAGE = 1000
"""Most entries served by one request."""
DECLARED_ACTIONS = ("export",)
"""What a client may declare (:func:`declare`)."""
MAX_DECLARED_RECORDS = 10**9


async def latest_checkpoint(ctx: Context) -> Checkpoint:
    """The checkpoint of the whole log, signed now if the newest stored one is older."""
    async with ctx.engine.connect() as conn:
        size = await store.size(conn)
        stored = await _newest_stored(conn)
        if stored is not None and stored.size == size:
            return stored
        if stored is not None and stored.size > size:
            raise Unavailable(
                f"the audit log holds {size} entries, fewer than its newest checkpoint "
                f"({stored.size}): the database was damaged or restored from an older backup"
            )
        hashes = await _leaf_hashes(conn, 0, size)
    root = await asyncio.to_thread(root_hash, hashes)
    checkpoint = Checkpoint.sign(
        log_id=ctx.instance.instance_id,
        size=size,
        root=root,
        timestamp=ctx.now(),
        sign=ctx.instance.log_key.sign,
    )
    return await _store(ctx, checkpoint)


async def checkpoint_age(ctx: Context) -> int | None:
    """Seconds since the newest checkpoint was signed (None before the first), for /metrics:
    clients fetch one whenever they verify, so a growing age means nobody verifies."""
    async with ctx.engine.connect() as conn:
        signed = await store.newest_checkpoint_time(conn)
    return None if signed is None else max(0, ctx.now() - signed)


async def checkpoint_at(ctx: Context, size: int) -> Checkpoint:
    """The stored checkpoint of exactly ``size`` entries; :class:`NotFound` if none was signed."""
    async with ctx.engine.connect() as conn:
        body = await store.checkpoint_body(conn, size)
    if body is None:
        raise NotFound(f"no checkpoint of size {size} was signed", size=size)
    return Checkpoint.from_bytes(body)


PUBLIC_EVENTS = frozenset({"instance-restored"})
"""Entries about the whole instance that every device reads: a restore tells every member
which of the entries it verified before were lost (design §13)."""


@dataclass(frozen=True)
class Scope:
    """What one device may read of the log: everything (an auditor), or its organisation's
    entries and those of the areas (by operation) and operations (with its role) it reads."""

    org_id: str
    auditor: bool = False
    areas: dict[str, frozenset[str]] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

    def sees(self, entry: dict[str, Any]) -> bool:
        if self.auditor or entry.get("event") in PUBLIC_EVENTS:
            return True
        operation = entry.get("operation")
        if operation is None:
            return entry.get("org") == self.org_id
        if operation not in self.areas:
            return False
        if "area" in entry:
            return entry["area"] in self.areas[operation]
        if "org" in entry:  # a client declaration: its organisation and the coordinators
            return entry["org"] == self.org_id or self.roles[operation] == "coordinator"
        return True


async def scope(ctx: Context, conn: AsyncConnection, principal: Principal) -> Scope:
    """The principal's :class:`Scope` under the current charters."""
    if principal.org_id in ctx.settings.auditors:
        return Scope(principal.org_id, auditor=True)
    areas, roles = {}, {}
    for row in await operation_store.of_organisation(conn, principal.org_id):
        charter = await _charter(conn, ctx.charters, row.operation_id, row.charter_version)
        readable = (a.name for a in charter.areas if charter.may_read(row.role, a.name))
        areas[row.operation_id] = frozenset(readable)
        roles[row.operation_id] = row.role
    return Scope(principal.org_id, areas=areas, roles=roles)


def address_tag(ctx: Context, address: str) -> str:
    """A keyed hash of a client address: equal addresses give equal tags, but the tag cannot
    be turned back into the address without the instance's token key."""
    key = hmac.new(ctx.instance.token_key, b"opseal/v1/audit-address", hashlib.sha256).digest()
    return b64e(hmac.new(key, address.encode(), hashlib.sha256).digest()[:16])


async def entries(ctx: Context, principal: Principal, start: int, end: int) -> dict[str, Any]:
    """Entries ``start`` to ``end`` (exclusive, at most :data:`MAX_PAGE`), cut at the log's
    end; those the principal may not read have ``entry`` None (their leaf hash is kept)."""
    if end < start:
        raise BadRequest("query 'end': expected at least 'start'", field="end")
    if end - start > MAX_PAGE:
        raise BadRequest(f"query 'end': at most {MAX_PAGE} entries per request", field="end")
    async with ctx.engine.connect() as conn:
        size = await store.size(conn)
        end = min(end, size)
        rows = await store.leaves(conn, start, end)
        reader = await scope(ctx, conn, principal)
    served = []
    for idx, raw, leaf in rows:
        entry = json.loads(raw)
        shown = entry if reader.sees(entry) else None
        served.append({"index": idx, "entry": shown, "leaf_hash": b64e(leaf)})
    return {"size": size, "entries": served}


async def inclusion_proof(ctx: Context, index: int, size: int) -> list[bytes]:
    """The proof that leaf ``index`` is in the tree of the first ``size`` leaves."""
    if index >= size:
        raise BadRequest("query 'index': expected below 'size'", field="index")
    async with ctx.engine.connect() as conn:
        _check_size(size, await store.size(conn), "size")
        hashes = await _leaf_hashes(conn, 0, size)
    return await asyncio.to_thread(inclusion_proof_from, _subtrees(hashes), index, size)


async def consistency_proof(ctx: Context, old: int, new: int) -> list[bytes]:
    """The proof that the tree of the first ``old`` leaves is a prefix of the first ``new``."""
    if old > new:
        raise BadRequest("query 'old': expected at most 'new'", field="old")
    async with ctx.engine.connect() as conn:
        _check_size(new, await store.size(conn), "new")
        hashes = await _leaf_hashes(conn, 0, new)
    return await asyncio.to_thread(consistency_proof_from, _subtrees(hashes), old, new)


def _check_size(size: int, current: int, field: str) -> None:
    if size > current:
        raise BadRequest(f"query {field!r}: the log holds only {current} entries", field=field)


def _subtrees(hashes: list[bytes]) -> SubtreeHasher:
    """Subtree roots over leaf hashes held in memory; each proof touches every leaf once."""
    return lambda start, end: root_hash(hashes[start:end])


async def _leaf_hashes(conn: AsyncConnection, start: int, end: int) -> list[bytes]:
    hashes = await store.leaf_hashes(conn, start, end)
    if len(hashes) != end - start:
        raise Unavailable(f"the audit log is missing leaves between {start} and {end}")
    return hashes


async def _newest_stored(conn: AsyncConnection) -> Checkpoint | None:
    body = await store.newest_checkpoint_body(conn)
    return None if body is None else Checkpoint.from_bytes(body)


async def _store(ctx: Context, checkpoint: Checkpoint) -> Checkpoint:
    """Store ``checkpoint``, or return the one another request stored first for its size."""
    try:
        async with write_transaction(ctx.engine) as conn:
            await store.insert_checkpoint(
                conn, checkpoint.size, checkpoint.to_bytes(), checkpoint.timestamp
            )
    except IntegrityError:
        # Same size, same leaves, same root: only the timestamp differs, and the first wins.
        return await checkpoint_at(ctx, checkpoint.size)
    return checkpoint


async def declare(
    ctx: Context,
    principal: Principal,
    *,
    action: str,
    operation_id: str,
    records: int,
    include_personal: bool,
) -> int:
    """Append a ``client-declaration`` entry for a member's device; returns its index.

    The device's organisation must be a member of the (not archived) operation.
    """
    if action not in DECLARED_ACTIONS:
        raise BadRequest(
            f"field 'action': expected one of {', '.join(DECLARED_ACTIONS)}", field="action"
        )
    if not 0 <= records <= MAX_DECLARED_RECORDS:
        raise BadRequest(f"field 'records': expected 0 to {MAX_DECLARED_RECORDS}", field="records")
    async with ctx.transaction() as tx:
        await membership(ctx, tx.conn, principal, operation_id)
        entry = {
            "event": "client-declaration",
            "action": action,
            "operation": operation_id,
            "device": principal.device_id,
            "org": principal.org_id,
            "records": records,
            "include_personal": include_personal,
        }
        return await store.append(tx.conn, [entry], tx.now, salt=True)
