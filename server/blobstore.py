"""Where blob chunks' bytes live: in the database (the default), a directory, or an
S3-compatible object store (AWS S3, MinIO, Ceph RGW...).

A blob's metadata and its chunk rows (offset, length) always live in the database, written in
the transactions that advance an upload; this module only keeps the bytes. With the database
store a chunk row carries its bytes (``data``), as before. With an external store the row
carries an **object key** instead, and the object is written *before* the transaction that
inserts the row: a row never names an object that is not there. Every object gets a fresh key
(``<blob id>/<offset>-<random>``), never reused, so a chunk written by a request whose
transaction is then refused, or deleted after a reset, can never remove bytes that a row still
names; such an object is deleted right after the refusal (an object left by a crash between
write and commit is named by no row and is only wasted space).

Objects hold ciphertext only (the client encrypts before upload and signs the whole blob's
SHA-256 into its message), so the store needs no confidentiality, and its integrity is checked
by every reader: the server when the upload completes, each client after download.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ChunkStore", "DirectoryStore", "MissingObject", "S3Store", "make_chunk_store"]


class MissingObject(LookupError):
    """No object under this key."""


class ChunkStore(Protocol):
    """Bytes of blob chunks by object key; ``external`` is False for the database store."""

    external: bool

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        """Store ``data`` durably under a new key and return the key."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; :class:`MissingObject` when there is none."""
        ...

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; keys already gone are ignored."""
        ...

    async def close(self) -> None: ...


class DatabaseStore:
    """Chunks' bytes stay in their database rows; nothing to do here."""

    external = False

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        raise AssertionError("the database store keeps bytes in the chunk rows")

    async def get(self, key: str) -> bytes:
        raise MissingObject(key)  # its bytes are in the rows: it holds no object

    async def delete(self, keys: Iterable[str]) -> None:
        return None

    async def close(self) -> None:
        return None


class DirectoryStore:
    """Chunks as files under ``root/<blob id>/``, written atomically and fsynced.

    For one node, or several sharing a network filesystem. Files are created 0600 in 0700
    folders; a write goes to a temporary name, is fsynced, then renamed, and the folder is
    fsynced, so a key returned by :meth:`put` survives a power cut.
    """

    external = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        blob_id, _, name = key.partition("/")
        if not blob_id or not name or "/" in name or ".." in key or key.startswith("/"):
            raise ValueError(f"not a chunk object key: {key!r}")
        return self.root / blob_id / name

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        key = _new_key(blob_id, offset)
        await asyncio.to_thread(self._write, self._path(key), data)
        return key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise MissingObject(key) from exc

    async def delete(self, keys: Iterable[str]) -> None:
        paths = [self._path(key) for key in keys]
        await asyncio.to_thread(self._unlink, paths)

    async def close(self) -> None:
        return None

    @staticmethod
    def _unlink(paths: list[Path]) -> None:
        folders = set()
        for path in paths:
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        for folder in folders:
            with contextlib.suppress(OSError):  # only an empty folder goes
                folder.rmdir()


def _new_key(blob_id: str, offset: int) -> str:
    return f"{blob_id}/{offset:016x}-{secrets.token_hex(8)}"


class S3Store:
    """Chunks as objects ``<prefix><blob id>/<offset>-<random>`` in one S3 bucket.

    Through aiobotocore (botocore's request signing and retries, on the event loop).
    Credentials come from the usual AWS sources (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role), never from OpSeal's settings; the
    endpoint URL names a MinIO or Ceph gateway (empty for AWS). A PUT is answered only once
    the object is durable, which is what :meth:`put` promises.
    """

    external = True

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "",
                 region: str = "") -> None:  # fmt: skip
        self.bucket, self.prefix = bucket, prefix
        self._options = {"endpoint_url": endpoint_url or None, "region_name": region or None}
        self._client: Any = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                session = await asyncio.to_thread(_loaded_session)
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    session.create_client("s3", **self._options)
                )
                self._exit = stack
            return self._client

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        key = _new_key(blob_id, offset)
        s3 = await self._s3()
        await s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        return key

    async def get(self, key: str) -> bytes:
        s3 = await self._s3()
        try:
            answer = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except s3.exceptions.NoSuchKey as exc:
            raise MissingObject(key) from exc
        async with answer["Body"] as body:
            return bytes(await body.read())

    async def delete(self, keys: Iterable[str]) -> None:
        names = [{"Key": self.prefix + key} for key in keys]
        if not names:
            return
        s3 = await self._s3()
        for start in range(0, len(names), 1000):  # the most one DeleteObjects request takes
            await s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": names[start : start + 1000], "Quiet": True}
            )

    async def close(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
            self._client = self._exit = None


def _loaded_session() -> Any:
    """An aiobotocore session with its configuration files and the S3 model read (botocore
    reads them from disk on first use: done here, off the event loop)."""
    from aiobotocore.session import get_session

    session = get_session()
    session.get_scoped_config()
    loader = session.get_component("data_loader")
    for kind in ("endpoints", "sdk-default-configuration", "_retry"):
        loader.load_data(kind)
    for model in ("service-2", "endpoint-rule-set-1"):
        loader.load_service_model("s3", model)
    loader.load_data_with_path("partitions")
    return session


def make_chunk_store(spec: str, *, s3_endpoint_url: str = "", s3_region: str = "") -> ChunkStore:
    """The store a ``blob_store`` setting names: ``database``, ``file:/absolute/path`` or
    ``s3://bucket/optional/prefix``."""
    if spec == "database":
        return DatabaseStore()
    if spec.startswith("file:"):
        return DirectoryStore(spec.removeprefix("file:"))
    if spec.startswith("s3://"):
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return S3Store(bucket, prefix, endpoint_url=s3_endpoint_url, region=s3_region)
    raise ValueError(f"not a blob store: {spec!r}")
