"""Attachments on the client (design §6): streaming, resumable upload and download.

**Upload** encrypts the file (:func:`opseal.crypto.attachments.encrypt_file`, off the event
loop) into a ciphertext file under ``<profile>/uploads/``, declares the blob (size and
SHA-256 of the ciphertext) and sends it in chunks of :data:`CHUNK_SIZE` with ``PUT``. The
upload's state — blob id, source path and its size and mtime, the file's metadata with its
key — is kept sealed in the store's ``meta`` table under ``upload/<key>``, so running the
same upload again (same operation, area and file) resumes from the ``received`` count the
server reports instead of starting over. A source file changed since then starts afresh.

**Download** fetches the blob with ranged ``GET`` requests into
``<profile>/downloads/<blob>.part`` (a re-run resumes from its length), then
:func:`~opseal.crypto.attachments.decrypt_file` checks the ciphertext size and SHA-256
against the signed metadata *before* decrypting into a temporary file beside the
destination, which replaces the destination only once the plaintext hash matched too. A
swapped, truncated or tampered blob raises :class:`AttachmentRefused`, is recorded as a
warning, and leaves no output file.

Both hold one chunk in memory at a time and retry transport failures, expired tokens and
rate limits with exponential backoff for :data:`RETRY_DEADLINE` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from opseal.crypto.attachments import FileMeta, decrypt_file, encrypt_file
from opseal.crypto.errors import CryptoError

from .errors import (
    BadRequestError,
    ClientError,
    ConflictError,
    NotFoundError,
    RangeNotSatisfiableError,
    RateLimitedError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
)
from .ports import Transfer
from .store import Store

__all__ = [
    "CHUNK_SIZE",
    "RETRY_DEADLINE",
    "Attachment",
    "AttachmentRefused",
    "Attachments",
    "Progress",
    "download",
    "upload",
]

CHUNK_SIZE = 4 * 1024 * 1024
"""Bytes of ciphertext per ``PUT`` or ranged ``GET``."""
RETRY_DEADLINE = 120.0
"""Seconds a request is retried after transport failures before the error is raised."""
_FIRST_DELAY, _MAX_DELAY = 0.5, 10.0
_RETRYABLE = (TransportError, UnauthorizedError, RateLimitedError, UnavailableError)

Progress = Callable[[int], object]
"""Called with each number of ciphertext bytes that moved (already stored ones on resume)."""
T = TypeVar("T")


class AttachmentRefused(ClientError):
    """A blob does not match the signed metadata (swapped, truncated or tampered with)."""


@dataclass(frozen=True)
class Attachment:
    """An uploaded attachment: the blob that holds its ciphertext and its signed metadata.

    Messages reference it as ``{"blob_id": ..., **FileMeta.to_json()}`` (:meth:`to_json`).
    """

    blob_id: str
    meta: FileMeta

    def to_json(self) -> dict[str, Any]:
        """The reference that goes into a message's signed plaintext."""
        return {"blob_id": self.blob_id, **self.meta.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Attachment:
        """Parse a reference strictly; :class:`ClientError` names what is wrong."""
        if not isinstance(obj, Mapping):
            raise ClientError("attachment: expected an object with blob_id and file metadata")
        fields = dict(obj)
        blob_id = _blob_id(fields.pop("blob_id", None))
        try:
            return cls(blob_id, FileMeta.from_json(fields))
        except CryptoError as exc:
            raise ClientError(f"attachment {blob_id}: {exc}") from exc


class Attachments:
    """The attachments part of a device: uploads and downloads through a narrow
    :class:`~opseal.client.ports.Transfer`, with resumable state in ``store`` and work files
    under ``home`` (the profile folder)."""

    def __init__(self, transfer: Transfer, store: Store, home: Path) -> None:
        self.transfer, self.store, self.home = transfer, store, home

    async def upload(
        self,
        op: str,
        area: str,
        path: str | os.PathLike[str],
        media_type: str | None = None,
        progress: Progress | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> Attachment:
        """See :func:`upload`."""
        return await upload(self, op, area, path, media_type, progress, chunk_size=chunk_size)

    async def download(
        self,
        meta: FileMeta,
        blob_id: str,
        dest_path: str | os.PathLike[str],
        progress: Progress | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> Path:
        """See :func:`download`."""
        return await download(self, meta, blob_id, dest_path, progress, chunk_size=chunk_size)


def _blob_id(value: object) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise ClientError(f"attachment: blob_id must be a UUID, got {value!r}") from exc


async def retrying(transfer: Transfer, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, retried with exponential backoff on failures that may pass."""
    delay, stop = _FIRST_DELAY, time.monotonic() + RETRY_DEADLINE
    while True:
        try:
            return await call()
        except _RETRYABLE as exc:
            if time.monotonic() > stop:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
            if isinstance(exc, UnauthorizedError):
                with contextlib.suppress(TransportError):
                    await transfer.login()  # a revoked device fails here, at once


def _work_dir(att: Attachments, name: str) -> Path:
    folder = att.home / name
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


# -- upload ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Upload:
    """What a resumed upload needs; sealed in the store while the upload is unfinished."""

    op: str
    area: str
    path: str
    size: int
    mtime_ns: int
    cipher: str
    blob_id: str
    meta: FileMeta

    def matches(self, source: os.stat_result) -> bool:
        return (self.size, self.mtime_ns) == (source.st_size, source.st_mtime_ns)

    def to_bytes(self) -> bytes:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "meta"}
        return json.dumps({**fields, "meta": self.meta.to_json()}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> _Upload:
        fields = json.loads(raw)
        return cls(**{**fields, "meta": FileMeta.from_json(fields["meta"])})


def _upload_key(op: str, area: str, source: Path) -> str:
    return hashlib.sha256(f"{op}\0{area}\0{source}".encode()).hexdigest()[:32]


def _load(att: Attachments, key: str) -> _Upload | None:
    raw = att.store.get(f"upload/{key}")
    if raw is None:
        return None
    try:
        return _Upload.from_bytes(att.store.open(raw, f"upload/{key}"))
    except (ClientError, CryptoError, ValueError, KeyError, TypeError):
        return None  # unreadable state: start afresh


def _save(att: Attachments, key: str, upload: _Upload) -> None:
    att.store.put(f"upload/{key}", att.store.seal(upload.to_bytes(), f"upload/{key}"))


async def _forget(att: Attachments, key: str, upload: _Upload | None) -> None:
    att.store.delete(f"upload/{key}")
    if upload is not None:
        await asyncio.to_thread(Path(upload.cipher).unlink, missing_ok=True)


def _resumable(upload: _Upload, source: Path) -> bool:
    """The source is unchanged since the upload began and its encrypted copy is still there."""
    return upload.matches(_stat(source)) and Path(upload.cipher).is_file()


def _stat(source: Path) -> os.stat_result:
    try:
        result = source.stat()
    except OSError as exc:
        raise ClientError(f"cannot read {source}: {exc.strerror}") from exc
    if not source.is_file():
        raise ClientError(f"{source} is not a regular file")
    return result


def _encrypt(source: Path, cipher: Path, media_type: str) -> FileMeta:
    fd = os.open(cipher, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
        meta = encrypt_file(src, dst, media_type=media_type, file_name=source.name)
        dst.flush()
        os.fsync(dst.fileno())
    return meta


async def _prepare(
    att: Attachments, key: str, op: str, area: str, source: Path, media_type: str | None
) -> _Upload:
    """Encrypt the file, declare its blob and remember both."""
    stat = await asyncio.to_thread(_stat, source)
    media_type = media_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    cipher = await asyncio.to_thread(_work_dir, att, "uploads") / f"{key}.enc"
    try:
        meta = await asyncio.to_thread(_encrypt, source, cipher, media_type)
    except (CryptoError, OSError) as exc:
        raise ClientError(f"cannot attach {source}: {exc}") from exc
    created = await retrying(
        att.transfer,
        partial(att.transfer.create_blob, op, area, meta.ciphertext_size, meta.ciphertext_sha256),
    )
    upload = _Upload(
        op, area, str(source), stat.st_size, stat.st_mtime_ns, str(cipher), created.blob_id, meta
    )
    _save(att, key, upload)
    return upload


def _read_at(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def _put(att: Attachments, blob_id: str, offset: int, data: bytes) -> int:
    """Send one chunk; returns the server's ``received`` count (a conflict says where)."""
    try:
        answer = await retrying(
            att.transfer, partial(att.transfer.put_blob_chunk, blob_id, offset, data)
        )
    except ConflictError as exc:  # stored by an attempt whose answer was lost
        if not isinstance(exc.details.get("received"), int):
            raise
        return int(exc.details["received"])
    return answer.received


async def _send(
    att: Attachments, upload: _Upload, chunk_size: int, progress: Progress | None
) -> None:
    """Send the ciphertext from where the server stands until the blob is complete."""
    total = upload.meta.ciphertext_size
    offset = (await retrying(att.transfer, partial(att.transfer.blob, upload.blob_id))).received
    if progress is not None and offset:
        progress(offset)
    while offset < total:
        data = await asyncio.to_thread(_read_at, upload.cipher, offset, chunk_size)
        if not data:
            raise ClientError(f"the encrypted copy {upload.cipher} was truncated")
        received = await _put(att, upload.blob_id, offset, data)
        if received == offset:
            raise ClientError(f"the server accepts no bytes of blob {upload.blob_id} at {offset}")
        if progress is not None and received > offset:
            progress(received - offset)
        offset = received


async def upload(
    att: Attachments,
    op: str,
    area: str,
    path: str | os.PathLike[str],
    media_type: str | None = None,
    progress: Progress | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> Attachment:
    """Encrypt ``path`` and upload it as a blob of ``op``/``area``; resumes an interrupted run.

    Returns the :class:`Attachment` to reference in a message. ``media_type`` defaults to a
    guess from the file name. ``chunk_size`` must be at least the server's minimum chunk
    (64 KiB) and at most its maximum.
    """
    source = await asyncio.to_thread(Path(path).resolve)
    key = _upload_key(op, area, source)
    state = _load(att, key)
    if state is None or not await asyncio.to_thread(_resumable, state, source):
        await _forget(att, key, state)
        state = await _prepare(att, key, op, area, source, media_type)
    try:
        await _send(att, state, chunk_size, progress)
    except (NotFoundError, BadRequestError):
        await _forget(att, key, state)  # blob gone or reset: the next run starts over
        raise
    await _forget(att, key, state)
    return Attachment(state.blob_id, state.meta)


# -- download --------------------------------------------------------------------------
def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as f:
        f.write(data)


def _held(part: Path, size: int) -> int:
    """Bytes of a previous attempt to resume from (none if the file is longer than expected)."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        return 0
    return have


async def _fetch(
    att: Attachments,
    blob_id: str,
    part: Path,
    size: int,
    chunk_size: int,
    progress: Progress | None,
) -> None:
    """Download ciphertext bytes into ``part`` until it holds ``size`` of them."""
    have = await asyncio.to_thread(_held, part, size)
    if progress is not None and have:
        progress(have)
    while have < size:
        end = min(have + chunk_size, size)
        try:
            data = await retrying(
                att.transfer, partial(att.transfer.download_blob, blob_id, have, end)
            )
        except RangeNotSatisfiableError as exc:
            raise AttachmentRefused(f"blob {blob_id} is shorter than its signed metadata") from exc
        if not data:
            raise AttachmentRefused(f"blob {blob_id} is shorter than its signed metadata")
        data = data[: end - have]
        await asyncio.to_thread(_append, part, data)
        have += len(data)
        if progress is not None:
            progress(len(data))


def _decrypt(part: Path, dest: Path, meta: FileMeta) -> None:
    """Decrypt into a temporary file beside ``dest`` that replaces it only on success."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with part.open("rb") as src, os.fdopen(fd, "wb") as dst:
            decrypt_file(src, dst, meta)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


async def download(
    att: Attachments,
    meta: FileMeta,
    blob_id: str,
    dest_path: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Fetch blob ``blob_id``, verify it against ``meta`` and decrypt it to ``dest_path``.

    Raises :class:`AttachmentRefused` (and writes nothing) when the blob is not the one the
    signed metadata describes. Returns the destination path.
    """
    blob_id = _blob_id(blob_id)
    dest = Path(dest_path)
    folder = await asyncio.to_thread(_work_dir, att, "downloads")
    part = folder / f"{blob_id}-{meta.ciphertext_sha256.hex()[:16]}.part"
    try:
        await _fetch(att, blob_id, part, meta.ciphertext_size, chunk_size, progress)
        await asyncio.to_thread(_decrypt, part, dest, meta)
    except OSError as exc:
        raise ClientError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except CryptoError as exc:
        await asyncio.to_thread(part.unlink, missing_ok=True)
        att.store.warn("", "", None, "attachment-refused", f"blob {blob_id}: {exc}")
        raise AttachmentRefused(f"attachment {blob_id} refused: {exc}") from exc
    except AttachmentRefused as exc:
        await asyncio.to_thread(part.unlink, missing_ok=True)
        att.store.warn("", "", None, "attachment-refused", str(exc))
        raise
    await asyncio.to_thread(part.unlink, missing_ok=True)
    return dest
