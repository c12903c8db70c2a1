"""Where blob chunks' bytes live: in the database (the default) or in a directory.

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
from typing import Protocol

__all__ = ["ChunkStore", "DirectoryStore", "make_chunk_store"]


class ChunkStore(Protocol):
    """Bytes of blob chunks by object key; ``external`` is False for the database store."""

    external: bool

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        """Store ``data`` durably under a new key and return the key."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; keys already gone are ignored."""
        ...


class DatabaseStore:
    """Chunks' bytes stay in their database rows; nothing to do here."""

    external = False

    async def put(self, blob_id: str, offset: int, data: bytes) -> str:
        raise AssertionError("the database store keeps bytes in the chunk rows")

    async def get(self, key: str) -> bytes:
        raise AssertionError("the database store keeps bytes in the chunk rows")

    async def delete(self, keys: Iterable[str]) -> None:
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
        key = f"{blob_id}/{offset:016x}-{secrets.token_hex(8)}"
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
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, keys: Iterable[str]) -> None:
        paths = [self._path(key) for key in keys]
        await asyncio.to_thread(self._unlink, paths)

    @staticmethod
    def _unlink(paths: list[Path]) -> None:
        folders = set()
        for path in paths:
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        for folder in folders:
            with contextlib.suppress(OSError):  # only an empty folder goes
                folder.rmdir()


def make_chunk_store(spec: str) -> ChunkStore:
    """The store a ``blob_store`` setting names: ``database`` or ``file:/absolute/path``."""
    if spec == "database":
        return DatabaseStore()
    if spec.startswith("file:"):
        return DirectoryStore(spec.removeprefix("file:"))
    raise ValueError(f"not a blob store: {spec!r}")
