"""The attachments part on its own: uploads and downloads through a narrow Transfer.

The part is given an in-process blob server (the :class:`~opseal.client.ports.Transfer`
protocol: four blob requests and a login) and a real local store, not a client: this is the
interface it depends on. End-to-end transfers against the real server are in test_content.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import pytest

from opseal.client.attachments import AttachmentRefused, Attachments
from opseal.client.errors import ConflictError, TransportError
from opseal.client.store import Store
from opseal.crypto.encoding import b64e
from opseal.wire.blobs import Blob, BlobCreated, BlobProgress

CHUNK = 64 * 1024


class BlobServer:
    """Blobs in memory, with the server's rules for offsets and sizes."""

    def __init__(self, drop_first_puts: int = 0) -> None:
        self.blobs: dict[str, dict[str, Any]] = {}
        self.logins = 0
        self._drops = drop_first_puts

    async def create_blob(self, operation_id: str, area: str, size: int, sha256: bytes):
        blob_id = str(uuid.uuid4())
        self.blobs[blob_id] = {"size": size, "sha256": sha256, "data": bytearray()}
        return BlobCreated(blob_id=blob_id, received=0)

    async def put_blob_chunk(self, blob_id: str, offset: int, data: bytes):
        blob = self.blobs[blob_id]
        if offset != len(blob["data"]):
            raise ConflictError("wrong offset", status=409, details={"received": len(blob["data"])})
        blob["data"] += data
        if self._drops:  # stored, but the answer is lost on the way back
            self._drops -= 1
            raise TransportError("connection reset")
        received = len(blob["data"])
        return BlobProgress(blob_id=blob_id, received=received, complete=received == blob["size"])

    async def blob(self, blob_id: str):
        blob = self.blobs[blob_id]
        return Blob(
            blob_id=blob_id, operation_id="op", area="plan", size=blob["size"],
            sha256=b64e(blob["sha256"]), received=len(blob["data"]),
            complete=len(blob["data"]) == blob["size"],
        )  # fmt: skip

    async def download_blob(self, blob_id: str, start: int = 0, end: int | None = None):
        return bytes(self.blobs[blob_id]["data"][start:end])

    async def login(self) -> None:
        self.logins += 1


@pytest.fixture
def store(tmp_path):
    """A real local store, sealed with a random key."""
    s = Store(tmp_path / "state.db", os.urandom(32))
    yield s
    s.close()


@pytest.fixture
def source(tmp_path):
    """A file of three and a bit chunks of random bytes."""
    path = tmp_path / "evidence.bin"
    path.write_bytes(os.urandom(3 * CHUNK + 123))
    return path


async def test_upload_then_download_gives_back_the_file(tmp_path, store, source):
    """A file uploaded in chunks downloads, verified and decrypted, byte for byte."""
    server = BlobServer()
    part = Attachments(server, store, tmp_path)
    attachment = await part.upload("op", "plan", source, chunk_size=CHUNK)
    [stored] = server.blobs.values()
    assert hashlib.sha256(stored["data"]).digest() == attachment.meta.ciphertext_sha256
    out = await part.download(attachment.meta, attachment.blob_id, tmp_path / "out.bin")
    assert out.read_bytes() == source.read_bytes()
    assert not list((tmp_path / "uploads").iterdir())


async def test_a_lost_answer_is_resumed_from_what_the_server_holds(
    tmp_path, store, source, monkeypatch
):
    """A chunk stored by the server whose answer was lost is not sent twice."""
    monkeypatch.setattr("opseal.client.attachments._FIRST_DELAY", 0.01)
    server = BlobServer(drop_first_puts=1)
    part = Attachments(server, store, tmp_path)
    attachment = await part.upload("op", "plan", source, chunk_size=CHUNK)
    [stored] = server.blobs.values()
    assert len(stored["data"]) == attachment.meta.ciphertext_size


async def test_a_tampered_blob_is_refused_and_writes_nothing(tmp_path, store, source):
    """A blob altered on the server is refused, recorded as a warning, and leaves no file."""
    server = BlobServer()
    part = Attachments(server, store, tmp_path)
    attachment = await part.upload("op", "plan", source, chunk_size=CHUNK)
    server.blobs[attachment.blob_id]["data"][10] ^= 1
    dest = tmp_path / "out.bin"
    with pytest.raises(AttachmentRefused):
        await part.download(attachment.meta, attachment.blob_id, dest)
    assert not dest.exists()
    assert [w[4] for w in store.warnings()] == ["attachment-refused"]
