"""Attachment blobs: resumable upload, ranged download and the area's access rules (design §6)."""

from __future__ import annotations

import hashlib
import io
import json
import os

import aiohttp
import pytest

from opseal.client.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotMemberError,
    PayloadTooLargeError,
)
from opseal.crypto.attachments import decrypt_file, encrypt_file
from opseal.server.services.blobs import MIN_CHUNK_BYTES
from opseal.server.storage import audit
from opseal.wire.blobs import BlobProgress

from .helpers import make_area

CHUNK = MIN_CHUNK_BYTES


def ciphertext(size: int = 3 * CHUNK + 1234) -> tuple[bytes, object]:
    """A real attachment ciphertext of a random file, and its metadata."""
    out = io.BytesIO()
    meta = encrypt_file(
        io.BytesIO(os.urandom(size)), out, media_type="image/jpeg", file_name="seizure.jpg"
    )
    return out.getvalue(), meta


async def declare(api, operation, data: bytes, area: str = "seizures") -> str:
    """Declare a blob for ``data`` in ``area`` and return its id."""
    digest = hashlib.sha256(data).digest()
    return (await api.create_blob(operation.id, area, len(data), digest)).blob_id


async def upload(api, blob_id: str, data: bytes, start: int = 0) -> BlobProgress | None:
    """Send ``data[start:]`` in CHUNK-sized pieces; returns the last answer."""
    answer = None
    for offset in range(start, len(data), CHUNK):
        answer = await api.put_blob_chunk(blob_id, offset, data[offset : offset + CHUNK])
    return answer


async def audit_events(server) -> list[dict]:
    """Every audit entry recorded so far, decoded."""
    async with server.ctx.engine.connect() as conn:
        entries = await audit.read_entries(conn, 0, await audit.size(conn))
    return [json.loads(entry) for _, entry in entries]


async def raw_get(operation, who: str, path: str, range_header: str | None = None):
    """A plain HTTP GET, to look at statuses and headers the client hides."""
    headers = {"Authorization": f"Bearer {operation.actors[who].api.token}"}
    if range_header:
        headers["Range"] = range_header
    async with (
        aiohttp.ClientSession() as session,
        session.get(operation.server.url + path, headers=headers) as response,
    ):
        return response.status, response.headers, await response.read()


@pytest.fixture
async def seizures(operation):
    """The 'seizures' area with the coordinator and the French customs device."""
    await make_area(operation, "seizures", ["coordinator", "customs"])
    return operation


async def test_upload_resumes_after_an_interrupted_chunk(seizures):
    """A chunk resent after a lost answer changes nothing, and the upload resumes to completion."""
    api = seizures.actors["customs"].api
    data, meta = ciphertext()
    created = await api.create_blob(seizures.id, "seizures", len(data), meta.ciphertext_sha256)
    blob_id = created.blob_id
    assert created.received == 0
    await api.put_blob_chunk(blob_id, 0, data[:CHUNK])
    second = await api.put_blob_chunk(blob_id, CHUNK, data[CHUNK : 2 * CHUNK])
    retried = await api.put_blob_chunk(blob_id, CHUNK, data[CHUNK : 2 * CHUNK])
    assert retried == second == BlobProgress(blob_id=blob_id, received=2 * CHUNK, complete=False)
    state = await api.blob(blob_id)
    assert (state.received, state.complete, state.size) == (2 * CHUNK, False, len(data))
    with pytest.raises(ConflictError, match="incomplete"):
        await api.download_blob(blob_id)
    done = await upload(api, blob_id, data, start=state.received)
    assert done == BlobProgress(blob_id=blob_id, received=len(data), complete=True)
    assert (await api.blob(blob_id)).complete is True
    uploaded = [e for e in await audit_events(seizures.server) if e["event"] == "blob-uploaded"]
    assert [(e["blob"], e["area"], e["size"]) for e in uploaded] == [
        (blob_id, "seizures", len(data))
    ]


async def test_download_returns_the_ciphertext_whole_and_in_ranges(seizures):
    """Another member downloads the exact ciphertext, whole or by range (206; 416 past the end)."""
    api = seizures.actors["customs"].api
    data, meta = ciphertext()
    blob_id = await declare(api, seizures, data)
    await upload(api, blob_id, data)
    reader = seizures.actors["coordinator"].api
    whole = await reader.download_blob(blob_id)
    assert whole == data
    decrypt_file(io.BytesIO(whole), io.BytesIO(), meta)
    span = (CHUNK - 100, 2 * CHUNK + 50)  # crosses two chunk boundaries
    assert await reader.download_blob(blob_id, *span) == data[span[0] : span[1]]
    assert await reader.download_blob(blob_id, len(data) - 10) == data[-10:]
    events = [e["event"] for e in await audit_events(seizures.server)]
    assert events.count("blob-downloaded") == 3
    path, size = f"/api/v1/blobs/{blob_id}/data", len(data)
    status, headers, body = await raw_get(seizures, "coordinator", path, "bytes=10-19")
    assert (status, headers["Content-Range"], body) == (206, f"bytes 10-19/{size}", data[10:20])
    status, headers, body = await raw_get(seizures, "coordinator", path, "bytes=-16")
    assert (status, headers["Content-Range"], body) == (
        206,
        f"bytes {size - 16}-{size - 1}/{size}",
        data[-16:],
    )
    status, headers, body = await raw_get(seizures, "coordinator", path)
    assert (status, headers["Accept-Ranges"], body) == (200, "bytes", data)
    status, _, body = await raw_get(seizures, "coordinator", path, f"bytes={size}-")
    error = json.loads(body)["error"]
    assert (status, error["code"], error["details"]) == (
        416,
        "range_not_satisfiable",
        {"size": size},
    )


async def test_chunk_at_the_wrong_offset_is_a_conflict(seizures):
    """A gap, or other bytes over stored ones, is refused with the offset to resume from."""
    api = seizures.actors["customs"].api
    data, _ = ciphertext()
    blob_id = await declare(api, seizures, data)
    await api.put_blob_chunk(blob_id, 0, data[:CHUNK])
    with pytest.raises(ConflictError) as gap:
        await api.put_blob_chunk(blob_id, 2 * CHUNK, data[2 * CHUNK : 3 * CHUNK])
    assert gap.value.details == {"received": CHUNK}
    with pytest.raises(ConflictError) as overwrite:
        await api.put_blob_chunk(blob_id, 0, bytes(CHUNK))
    assert overwrite.value.details == {"received": CHUNK}
    with pytest.raises(ForbiddenError, match="only the device that created"):
        await seizures.actors["coordinator"].api.put_blob_chunk(blob_id, CHUNK, data[CHUNK:])
    with pytest.raises(BadRequestError, match="at least"):
        await api.put_blob_chunk(blob_id, CHUNK, data[CHUNK : CHUNK + 10])
    assert (await api.blob(blob_id)).received == CHUNK


async def test_hash_mismatch_resets_the_blob(seizures):
    """Bytes that do not match the declared SHA-256 are refused and the upload starts over."""
    api = seizures.actors["customs"].api
    data, _ = ciphertext()
    blob_id = await declare(api, seizures, data)
    tampered = data[:CHUNK] + bytes([data[CHUNK] ^ 1]) + data[CHUNK + 1 :]
    with pytest.raises(BadRequestError, match="do not match the declared sha256") as refused:
        await upload(api, blob_id, tampered)
    assert refused.value.status == 400
    assert refused.value.details == {"received": 0}
    assert (await api.blob(blob_id)).received == 0
    assert (await upload(api, blob_id, data)).complete is True
    assert await api.download_blob(blob_id) == data


async def test_readers_outside_a_customs_only_area_are_refused(operation):
    """A stakeholder, an outsider and a customs device outside the roster get nothing of it."""
    await make_area(operation, "plan", ["coordinator", "customs"])
    api = operation.actors["coordinator"].api
    data = os.urandom(5000)
    blob_id = await declare(api, operation, data, "plan")
    await api.put_blob_chunk(blob_id, 0, data)
    assert (await operation.actors["customs"].api.blob(blob_id)).area == "plan"
    refusals = {
        "stakeholder": ForbiddenError,
        "outsider": NotMemberError,
        "customs2": ForbiddenError,
    }
    for who, error in refusals.items():
        other = operation.actors[who].api
        with pytest.raises(error):
            await other.blob(blob_id)
        with pytest.raises(error):
            await other.download_blob(blob_id)
        with pytest.raises(error):
            await other.download_blob(blob_id, 0, 10)
    status, _, body = await raw_get(operation, "stakeholder", f"/api/v1/blobs/{blob_id}/data")
    assert status == 403
    assert data[:16] not in body
    with pytest.raises(ForbiddenError, match="may not post"):
        await operation.actors["customs"].api.create_blob(operation.id, "plan", 10, bytes(32))


async def test_oversize_blob_and_chunk_are_refused(seizures):
    """A blob above the size limit, or a chunk above the chunk limit, answers 413."""
    api = seizures.actors["customs"].api
    settings = seizures.server.ctx.settings
    with pytest.raises(PayloadTooLargeError, match="limit") as too_big:
        await api.create_blob(seizures.id, "seizures", settings.max_blob_bytes + 1, bytes(32))
    assert too_big.value.status == 413
    size = settings.max_blob_chunk_bytes + 1
    blob_id = (await api.create_blob(seizures.id, "seizures", size, bytes(32))).blob_id
    with pytest.raises(PayloadTooLargeError):
        await api.put_blob_chunk(blob_id, 0, bytes(size))
    assert (await api.blob(blob_id)).received == 0
    small = (await api.create_blob(seizures.id, "seizures", 100, bytes(32))).blob_id
    with pytest.raises(BadRequestError, match="past the blob's declared size"):
        await api.put_blob_chunk(small, 0, bytes(101))
