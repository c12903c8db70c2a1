"""Client-side verification of the audit log (design §7): trust the log key, not the server.

:func:`verify_audit` checks the newest signed checkpoint against the pinned log key, rehashes
every entry and compares the root, and proves that the log extends the checkpoint the
auditor remembered from last time, so a rewritten, truncated or forked history fails. The
caller stores ``report.checkpoint.to_bytes()`` and passes it back as ``last`` next time.
:func:`verify_entry` proves one entry against a verified checkpoint without reading the rest.
The server shows each device only the entries it needs to know (design §15): a hidden entry
comes as its leaf hash alone, which still counts in the recomputed root, so the whole tree is
checked even when most of it is not readable.
Every failure raises :class:`AuditError` with a message naming what did not match.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opseal.crypto.encoding import b64d
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey
from opseal.crypto.merkle import (
    Checkpoint,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from opseal.wire.audit import AuditEntry

from .api import ApiClient
from .errors import ClientError, MalformedAnswerError
from .session import Session
from .store import Store

__all__ = [
    "AuditError",
    "AuditReport",
    "Auditor",
    "encode_entry",
    "latest_checkpoint",
    "verify_audit",
    "verify_entry",
]

PAGE = 1000
"""Entries asked for per request (the server's maximum)."""

T = TypeVar("T")


class AuditError(ClientError):
    """The audit log, a checkpoint or a proof does not verify: the server cannot be trusted."""


class LogRestoredError(AuditError):
    """The log does not extend the remembered checkpoint, and says why: the instance was
    restored from a backup holding its first ``kept`` entries, so the entries ``kept`` to
    ``seen - 1`` this device verified before are lost. Only the instance's log key can sign
    that, but a dishonest server could claim it too: accepting is a person's decision."""

    def __init__(self, kept: int, seen: int, restored_at: int) -> None:
        self.kept, self.seen, self.restored_at = kept, seen, restored_at
        super().__init__(
            f"the instance was restored from a backup holding the first {kept} audit entries; "
            f"this device had verified {seen}: entries {kept} to {seen - 1} are lost. If the "
            "operator announced the restore, run `opseal audit verify --accept-restore`"
        )


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_audit` checked: remember ``checkpoint`` for the next run."""

    size: int
    root: bytes
    entries_checked: int
    """Leaves counted in the recomputed root (those shown were rehashed from their content)."""
    checkpoint: Checkpoint
    hidden: int = 0
    """Entries the server showed as a leaf hash only (not for this device)."""
    shown: tuple[tuple[int, dict[str, Any]], ...] = ()
    """The entries shown to this device, with their index, each checked against its leaf."""
    restored: LogRestoredError | None = None
    """Set when a restore was accepted: which remembered entries it lost."""


class Auditor:
    """The audit part of a device: verifies the log against the log key pinned at enrolment
    and the last checkpoint it saw, which it keeps in ``store``."""

    def __init__(self, session: Session, store: Store) -> None:
        self._session, self._store = session, store

    async def verify(self, log_key: bytes, *, accept_restore: bool = False) -> AuditReport:
        """Verify the whole log against ``log_key`` (:func:`verify_audit`) and remember its
        checkpoint for the next run."""
        last_raw = self._store.get("audit-checkpoint")
        last = Checkpoint.from_bytes(last_raw) if last_raw else None
        report = await verify_audit(self._session.api, log_key, last, accept_restore=accept_restore)
        self._store.put("audit-checkpoint", report.checkpoint.to_bytes())
        return report


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes the server hashed for ``entry`` (sorted keys, no spaces, UTF-8)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def verify_audit(
    api: ApiClient, log_key: bytes, last: Checkpoint | None, *, accept_restore: bool = False
) -> AuditReport:
    """Verify the whole audit log against ``log_key`` and the remembered checkpoint ``last``.

    Raises :class:`AuditError` if the newest checkpoint is not signed by ``log_key``, if any
    entry or the recomputed root disagrees with it, or if it does not extend ``last`` —
    :class:`LogRestoredError` when the log says it was restored from a backup, unless
    ``accept_restore`` (then the report names what was lost).
    """
    key = _verify_key(log_key)
    checkpoint = await latest_checkpoint(api, log_key)
    if last is not None:
        _check_signature(last, key, "the remembered checkpoint")
    leaves, shown = await _entry_leaves(api, checkpoint.size)
    root = await asyncio.to_thread(root_hash, leaves)
    if root != checkpoint.root:
        raise AuditError(
            f"the root of the {checkpoint.size} entries does not match the signed checkpoint: "
            "entries were altered"
        )
    restored = None
    if last is not None:
        try:
            await _check_extends(api, last, checkpoint)
        except AuditError as exc:
            restored = _restore_in(shown, last)
            if restored is None:
                raise
            if not accept_restore:
                raise restored from exc
    hidden = len(leaves) - len(shown)
    return AuditReport(
        checkpoint.size, root, len(leaves), checkpoint, hidden, tuple(shown), restored
    )


def _restore_in(shown: list[tuple[int, Any]], last: Checkpoint) -> LogRestoredError | None:
    """The restore that explains why the log no longer extends ``last``: an
    ``instance-restored`` entry at index B saying the backup held B entries, with B below the
    remembered size (a restore of a later backup would not break the prefix), recorded after
    the remembered checkpoint was signed (an older restore, already verified, explains
    nothing that happened since)."""
    for index, entry in reversed(shown):
        if entry.get("event") != "instance-restored":
            continue
        kept, when = entry.get("backup_audit_size"), entry.get("time")
        if not isinstance(kept, int) or not isinstance(when, int):
            continue
        if kept == index and kept < last.size and when >= last.timestamp:
            return LogRestoredError(kept, last.size, when)
    return None


async def latest_checkpoint(api: ApiClient, log_key: bytes) -> Checkpoint:
    """The server's newest checkpoint, once its signature verifies with ``log_key``."""
    body = await _answer(api.audit_checkpoint())
    try:
        checkpoint = Checkpoint.from_bytes(b64d(body.checkpoint, field="checkpoint"))
    except CryptoError as exc:
        raise AuditError(f"the server's checkpoint is malformed: {exc!r}") from exc
    _check_signature(checkpoint, _verify_key(log_key), "the server's checkpoint")
    return checkpoint


async def verify_entry(api: ApiClient, checkpoint: Checkpoint, index: int) -> dict[str, Any]:
    """Fetch entry ``index`` and prove it is in the tree of ``checkpoint``; returns the entry.

    ``checkpoint`` must already be verified (from :func:`latest_checkpoint` or a report).
    """
    if not 0 <= index < checkpoint.size:
        raise AuditError(f"entry {index} is outside the checkpoint of size {checkpoint.size}")
    page = await _answer(api.audit_entries(index, index + 1))
    if not isinstance(page, list) or len(page) != 1:
        raise AuditError(f"the server withheld entry {index}")
    entry, leaf = _entry(page[0], index)
    if entry is None:
        raise AuditError(f"entry {index} is not for this device to read")
    proof = await _answer(api.audit_inclusion_proof(index, checkpoint.size))
    try:
        verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root)
    except CryptoError as exc:
        raise AuditError(f"entry {index} is not in the signed log: {exc}") from exc
    return entry


async def _check_extends(api: ApiClient, last: Checkpoint, new: Checkpoint) -> None:
    """The new checkpoint's log must hold the remembered one's as its prefix."""
    if new.log_id != last.log_id:
        raise AuditError(f"the checkpoint is for log {new.log_id!r}, not {last.log_id!r}")
    if new.size < last.size:
        raise AuditError(
            f"the log holds {new.size} entries, fewer than the {last.size} remembered: "
            "its history was truncated"
        )
    proof: list[bytes] = []
    if new.size > last.size:
        proof = await _answer(api.audit_consistency_proof(last.size, new.size))
    try:
        verify_consistency(last.size, new.size, last.root, new.root, proof)
    except CryptoError as exc:
        raise AuditError(
            f"the log of size {new.size} does not extend the remembered checkpoint of size "
            f"{last.size}: its history was rewritten ({exc})"
        ) from exc


async def _entry_leaves(api: ApiClient, size: int) -> tuple[list[bytes], list[tuple[int, Any]]]:
    """Every entry's leaf hash, recomputed from its content where it is shown (pages of
    :data:`PAGE`), and the entries shown with their index."""
    leaves: list[bytes] = []
    shown: list[tuple[int, Any]] = []
    while len(leaves) < size:
        start = len(leaves)
        end = min(size, start + PAGE)
        page = await _answer(api.audit_entries(start, end))
        if not isinstance(page, list) or not 0 < len(page) <= end - start:
            raise AuditError(f"the server did not send entries {start} to {end - 1}")
        for offset, item in enumerate(page):
            entry, leaf = _entry(item, start + offset)
            leaves.append(leaf)
            if entry is not None:
                shown.append((start + offset, entry))
    return leaves, shown


def _entry(item: AuditEntry, index: int) -> tuple[dict[str, Any] | None, bytes]:
    """An entry and its leaf hash recomputed from its content, checked against the server's;
    a hidden entry (None) keeps the served leaf hash."""
    try:
        served_index, entry = item.index, item.entry
        served_leaf = b64d(item.leaf_hash, field="leaf_hash")
    except CryptoError as exc:
        raise AuditError(f"entry {index}: the server's answer is malformed: {exc!r}") from exc
    if served_index != index:
        raise AuditError(f"expected entry {index}, the server sent entry {served_index!r}")
    if entry is None:
        if len(served_leaf) != 32:
            raise AuditError(f"entry {index}: the leaf hash is not 32 bytes")
        return None, served_leaf
    if not isinstance(entry, dict):
        raise AuditError(f"entry {index} is not a JSON object")
    leaf = leaf_hash(encode_entry(entry))
    if leaf != served_leaf:
        raise AuditError(f"entry {index}: its content does not match its leaf hash")
    return entry, leaf


def _verify_key(raw: bytes) -> VerifyKey:
    try:
        return VerifyKey(raw)
    except CryptoError as exc:
        raise AuditError(f"the pinned log key is unusable: {exc}") from exc


def _check_signature(checkpoint: Checkpoint, key: VerifyKey, what: str) -> None:
    try:
        checkpoint.verify(key.verify)
    except CryptoError as exc:
        message = f"{what} (size {checkpoint.size}) is not signed by the pinned log key"
        raise AuditError(f"{message} {key.fingerprint}") from exc


async def _answer(call: Awaitable[T]) -> T:
    """The result of an API call, with undecodable answers reported as audit failures."""
    try:
        return await call
    except (CryptoError, MalformedAnswerError) as exc:
        raise AuditError(f"the server's answer is malformed: {exc!r}") from exc
