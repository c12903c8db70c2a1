"""``opseal-server backup`` and ``restore``: a consistent, encrypted snapshot of an instance.

A backup holds every table's rows from one database snapshot — the instance keys (the audit
log's signing key, the token key) included — and the bytes of every blob chunk, wherever the
blob store keeps them, so it restores onto any database backend and any blob store.

It is encrypted to an **operator key** made with ``opseal-server backup-key``: a hybrid
ML-KEM-768 + X25519 HPKE key pair whose private half is sealed under a passphrase (Argon2id)
and kept off the server. The server host needs only the public half, so a stolen backup, or a
stolen server, does not open the backups. The payload is encrypted as an attachment stream
(AES-256-GCM chunks, :mod:`opseal.crypto.attachments`: truncation, reordering and tampering
are detected) under a fresh key; that key and the stream's hashes are sealed to the operator
key in a trailer. Nothing is written in the clear, not even to a temporary file.

File: ``MAGIC | stream ciphertext | sealed metadata | u32 length of the sealed metadata``.
The plaintext stream is a sequence of frames, each ``u32 length | msgpack``: a header (format,
schema revision, time), table pages ``{table, columns, rows}`` (parents before children) and
an end frame with the row counts and the audit log's size in the snapshot.

Restore needs an empty database at the same schema revision (``opseal-server migrate`` on a
new database), checks the whole file before writing anything, writes every row in one
transaction, and appends ``instance-restored`` to the audit log naming the backup's log size:
members whose client remembered a later checkpoint are told exactly which entries were lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from opseal.crypto.attachments import AttachmentDecryptor, AttachmentEncryptor, FileMeta
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import (
    HpkePrivateKey,
    HpkePublicKey,
    fingerprint_text,
    open_key_file,
    seal_key_file,
)

from .blobstore import ChunkStore
from .storage import audit, snapshot
from .storage.db import head_revision, write_transaction

__all__ = ["BackupError", "make_operator_key", "read_recipient", "restore", "write_backup"]

MAGIC = b"OPSEAL-BACKUP/1\n"
FORMAT = "opseal-backup/1"
RECIPIENT_PREFIX = "opseal-backup-recipient:"
_META_INFO = b"opseal/v1/backup-meta"
_KEY_PURPOSE = "backup-operator"
_FRAME_BYTES = 8 * 1024 * 1024  # rows are flushed into a frame once this many bytes wait
_MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class BackupError(Exception):
    """A backup that cannot be made, opened or restored; the message says why."""


# -- operator keys ---------------------------------------------------------------------
def make_operator_key(path: Path, passphrase: str) -> str:
    """Write the sealed private key to ``path`` (0600) and the recipient line to
    ``path.pub``; returns the public key's fingerprint."""
    if len(passphrase) < 16:
        raise BackupError("the operator key's passphrase must have at least 16 characters")
    key = HpkePrivateKey.generate()
    sealed = seal_key_file(key.private_bytes(), passphrase, purpose=_KEY_PURPOSE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(sealed)
    public = path.with_name(path.name + ".pub")
    public.write_text(RECIPIENT_PREFIX + b64e(key.public_key.raw) + "\n")
    return fingerprint_text(key.public_key.key_id)


def read_recipient(path: Path) -> HpkePublicKey:
    text = path.read_text().strip()
    if not text.startswith(RECIPIENT_PREFIX):
        raise BackupError(f"{path}: not an operator public key ({RECIPIENT_PREFIX}...)")
    try:
        return HpkePublicKey(b64d(text.removeprefix(RECIPIENT_PREFIX), field="recipient"))
    except CryptoError as exc:
        raise BackupError(f"{path}: not an operator public key ({exc})") from exc


def _open_operator_key(path: Path, passphrase: str) -> HpkePrivateKey:
    try:
        return HpkePrivateKey(open_key_file(path.read_bytes(), passphrase, purpose=_KEY_PURPOSE))
    except CryptoError as exc:
        raise BackupError(f"{path}: the operator key does not open ({exc})") from exc


# -- writing ---------------------------------------------------------------------------
class _Sink:
    """Frames in, ciphertext out to ``out``: nothing reaches the disk in the clear."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.file_key = os.urandom(32)
        self.encryptor = AttachmentEncryptor(self.file_key)

    def frame(self, value: Any) -> None:
        body = msgspec.msgpack.encode(value)
        self.out.write(self.encryptor.update(_LENGTH.pack(len(body)) + body))

    def close(self, recipient: HpkePublicKey) -> int:
        self.out.write(self.encryptor.finalize())
        meta = FileMeta(
            file_key=self.file_key,
            ciphertext_sha256=self.encryptor.ciphertext_sha256,
            plaintext_sha256=self.encryptor.plaintext_sha256,
            size=self.encryptor.size,
            ciphertext_size=self.encryptor.ciphertext_size,
            media_type="application/x-opseal-backup",
            file_name="backup",
        )
        sealed = recipient.seal(meta.to_bytes(), _META_INFO)
        self.out.write(sealed + _LENGTH.pack(len(sealed)))
        return self.encryptor.ciphertext_size


async def write_backup(
    engine: Any, chunks: ChunkStore, recipient: HpkePublicKey, path: Path, *, postgres: bool
) -> dict[str, Any]:
    """Write the encrypted snapshot to ``path`` (created 0600, replaced only when complete).
    File work runs off the event loop (the CLI's loop, or a server's)."""
    partial = path.with_name(path.name + ".partial")
    out = await asyncio.to_thread(_create_private, partial)
    counts: dict[str, int] = {}
    try:
        sink = _Sink(out)
        header = {"format": FORMAT, "revision": await head_revision(engine),
                  "created_at": int(time.time())}  # fmt: skip
        await asyncio.to_thread(out.write, MAGIC)
        await asyncio.to_thread(sink.frame, {"header": header})
        pending: list[list[Any]] = []
        waiting = 0
        async for table, columns, rows in snapshot.read_snapshot(engine, postgres=postgres):
            for row in rows:
                if table == "blob_chunks":
                    row = await _inline_chunk(chunks, columns, row)
                pending.append(row)
                counts[table] = counts.get(table, 0) + 1
                waiting += sum(len(v) for v in row if isinstance(v, bytes | str))
                if waiting >= _FRAME_BYTES:
                    await asyncio.to_thread(sink.frame, _page(table, columns, pending))
                    pending, waiting = [], 0
            if pending:
                await asyncio.to_thread(sink.frame, _page(table, columns, pending))
                pending, waiting = [], 0
        log_size = counts.get("audit_leaves", 0)  # the log in the snapshot, not after it
        await asyncio.to_thread(sink.frame, {"end": {"rows": counts, "audit_size": log_size}})
        size = await asyncio.to_thread(sink.close, recipient)
        await asyncio.to_thread(_finish, out, partial, path)
    except BaseException:
        await asyncio.to_thread(_discard, out, partial)
        raise
    return {"file": str(path), "bytes": size, "audit_size": log_size, "rows": counts,
            "recipient": fingerprint_text(recipient.key_id)}  # fmt: skip


def _page(table: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"table": table, "columns": columns, "rows": rows}


def _create_private(path: Path) -> IO[bytes]:
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _finish(out: IO[bytes], partial: Path, path: Path) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.replace(partial, path)


def _discard(out: IO[bytes], partial: Path) -> None:
    out.close()
    partial.unlink(missing_ok=True)


async def _inline_chunk(chunks: ChunkStore, columns: list[str], row: list[Any]) -> list[Any]:
    """A chunk row carrying its bytes, wherever the store keeps them."""
    values = dict(zip(columns, row, strict=True))
    if values["data"] is None:
        values["data"] = await chunks.get(values["object_key"])
        values["object_key"] = None
    if values.get("length") is None:
        values["length"] = len(values["data"])
    return [values[c] for c in columns]


# -- reading ---------------------------------------------------------------------------
def _open_meta(handle: IO[bytes], key: HpkePrivateKey) -> FileMeta:
    """The stream's metadata, from the trailer."""
    if handle.read(len(MAGIC)) != MAGIC:
        raise BackupError("not an OpSeal backup (no header)")
    end = handle.seek(0, os.SEEK_END)
    if end < len(MAGIC) + _LENGTH.size:
        raise BackupError("the backup is truncated")
    handle.seek(end - _LENGTH.size)
    (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
    start = end - _LENGTH.size - length
    if not len(MAGIC) <= start:
        raise BackupError("the backup is truncated or its trailer is damaged")
    handle.seek(start)
    try:
        meta = FileMeta.from_bytes(key.open(handle.read(length), _META_INFO))
    except CryptoError as exc:
        raise BackupError(
            "the backup does not open with this operator key (another key, or a damaged "
            f"trailer): {exc}"
        ) from exc
    if start - len(MAGIC) != meta.ciphertext_size:
        raise BackupError("the backup's stream is not the size its trailer says: truncated?")
    return meta


def _frames(handle: IO[bytes], meta: FileMeta) -> Iterator[Any]:
    """Decrypted frames; the stream's hash was checked first, and the decryptor fails on any
    truncation or change, so a damaged file yields no frame past the damage."""
    handle.seek(len(MAGIC))
    digest, left = hashlib.sha256(), meta.ciphertext_size
    while left:
        block = handle.read(min(left, 1 << 20))
        if not block:
            raise BackupError("the backup is truncated")
        digest.update(block)
        left -= len(block)
    if digest.digest() != meta.ciphertext_sha256:
        raise BackupError("the backup's content does not match its sealed hash: it was changed")
    handle.seek(len(MAGIC))
    decryptor, buffer, left = AttachmentDecryptor(meta.file_key), bytearray(), meta.ciphertext_size
    try:
        while True:
            block = handle.read(min(left, 1 << 20)) if left else b""
            left -= len(block)
            buffer += decryptor.update(block) if block else decryptor.finalize()
            while len(buffer) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(buffer)
                if size > _MAX_FRAME:
                    raise BackupError("the backup holds a frame larger than any it writes")
                if len(buffer) < _LENGTH.size + size:
                    break
                yield msgspec.msgpack.decode(bytes(buffer[_LENGTH.size : _LENGTH.size + size]))
                del buffer[: _LENGTH.size + size]
            if not block:
                break
    except CryptoError as exc:
        raise BackupError(f"the backup's content is damaged: {exc}") from exc
    if buffer:
        raise BackupError("the backup ends inside a frame")


async def restore(
    engine: Any, chunks: ChunkStore, path: Path, key_path: Path, passphrase: str, *,
    postgres: bool, now: int,
) -> dict[str, Any]:  # fmt: skip
    """Restore the backup at ``path`` into the empty database behind ``engine``."""
    key = await asyncio.to_thread(_open_operator_key, key_path, passphrase)
    handle = await asyncio.to_thread(path.open, "rb")
    written: list[str] = []
    try:
        meta = await asyncio.to_thread(_open_meta, handle, key)
        frames = _frames(handle, meta)  # each next() reads the file: called in a thread
        header = (await asyncio.to_thread(next, frames, None) or {}).get("header")
        if not header or header.get("format") != FORMAT:
            raise BackupError("the backup has no header frame of format " + FORMAT)
        if header["revision"] != await head_revision(engine):
            raise BackupError(
                f"the backup is at schema revision {header['revision']}, this database at "
                f"{await head_revision(engine)}: restore with the OpSeal version that made it, "
                "then upgrade"
            )
        counts: dict[str, int] = {}
        async with write_transaction(engine) as conn:
            if not await snapshot.is_empty(conn):
                raise BackupError(
                    "the database already holds an instance: restore into a new database "
                    "(`opseal-server migrate` on an empty one)"
                )
            end = None
            while (frame := await asyncio.to_thread(next, frames, None)) is not None:
                if "end" in frame:
                    end = frame["end"]
                    continue
                table, columns, rows = frame["table"], frame["columns"], frame["rows"]
                if table == "blob_chunks" and chunks.external:
                    rows = [await _store_chunk(chunks, columns, row, written) for row in rows]
                await snapshot.insert_rows(conn, table, columns, rows)
                counts[table] = counts.get(table, 0) + len(rows)
            if end is None or end.get("rows") != counts:
                raise BackupError("the backup is incomplete: its end frame is missing or differs")
            if postgres:
                await snapshot.reset_sequences(conn)
            await audit.append(conn, [{"event": "instance-restored",
                                       "backup_created_at": header["created_at"],
                                       "backup_audit_size": end["audit_size"]}],
                               now, salt=True)  # fmt: skip
    except BaseException:
        await chunks.delete(written)
        raise
    finally:
        await asyncio.to_thread(handle.close)
    return {"restored": str(path), "rows": counts, "audit_size": end["audit_size"],
            "backup_created_at": header["created_at"]}  # fmt: skip


async def _store_chunk(
    chunks: ChunkStore, columns: list[str], row: list[Any], written: list[str]
) -> list[Any]:
    values = dict(zip(columns, row, strict=True))
    key = await chunks.put(values["blob_id"], values["offset"], values["data"])
    written.append(key)
    values["data"], values["object_key"] = None, key
    return [values[c] for c in columns]
