"""Blob bytes in an external store — a folder (`blob_store = "file:/..."`) or S3-compatible
object storage (`s3://bucket/prefix`, against moto's real S3-protocol server): the database
keeps only the chunk rows, the store only ciphertext, and nothing is left behind by refusals,
resets or the purge (design §13)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from opseal.client.errors import BadRequestError, ConflictError
from opseal.crypto.attachments import decrypt_file
from opseal.server.config import ConfigError, Settings
from opseal.server.services import retention
from opseal.server.storage.tables import blob_chunks

from .helpers import make_area
from .test_blobs import CHUNK, ciphertext, upload

DAY = 86400


class Objects:
    """What the blob store holds, read around the server: a folder's files or a bucket's objects."""

    def __init__(self, spec: str, s3: object | None = None, endpoint: str = "") -> None:
        self.spec, self.s3, self.endpoint = spec, s3, endpoint

    def read(self) -> dict[str, bytes]:
        if self.s3 is not None:
            bucket, _, prefix = self.spec.removeprefix("s3://").partition("/")
            listed = self.s3.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
            return {
                o["Key"].removeprefix(prefix + "/"): self.s3.get_object(  # type: ignore[attr-defined]
                    Bucket=bucket, Key=o["Key"]
                )["Body"].read()
                for o in listed.get("Contents", [])
            }
        root = Path(self.spec.removeprefix("file:"))
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3-protocol server (moto's server mode) on a loopback port, for this module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(params=["file", "s3"])
def objects(request, tmp_path, monkeypatch) -> Objects:
    if request.param == "file":
        return Objects(f"file:{tmp_path / 'blobs'}")
    import botocore.session

    for name, value in (("AWS_ACCESS_KEY_ID", "opseal-test"), ("AWS_SECRET_ACCESS_KEY", "x" * 20),
                        ("AWS_DEFAULT_REGION", "eu-west-1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"opseal-{uuid.uuid4().hex[:12]}"
    s3 = botocore.session.get_session().create_client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return Objects(f"s3://{bucket}/instance-a", s3, endpoint)


@pytest.fixture
def settings(database_url, objects) -> Settings:
    return Settings(database_url=database_url, rate_limit_per_minute=100_000,
                    blob_store=objects.spec,
                    s3_endpoint_url=objects.endpoint)  # fmt: skip


async def chunk_rows(server) -> list:
    async with server.ctx.engine.connect() as conn:
        return list(await conn.execute(select(blob_chunks).order_by(blob_chunks.c.offset)))


async def test_external_store_keeps_the_bytes_and_leaves_nothing_behind(operation, objects):
    """Upload with a refused chunk, download whole and by range, a reset, and the purge."""
    await make_area(operation, "seizures", ["coordinator", "customs"])
    api = operation.actors["customs"].api
    data, meta = ciphertext()  # three full chunks and a short last one
    blob_id = (await api.create_blob(operation.id, "seizures", len(data),
                                     meta.ciphertext_sha256)).blob_id  # fmt: skip
    await api.put_blob_chunk(blob_id, 0, data[:CHUNK])
    with pytest.raises(ConflictError):  # other bytes over a stored chunk: its object is dropped
        await api.put_blob_chunk(blob_id, 0, bytes(CHUNK))
    with pytest.raises(BadRequestError, match="at least"):  # written, then refused in the tx
        await api.put_blob_chunk(blob_id, CHUNK, data[CHUNK : CHUNK + 10])
    files = await asyncio.to_thread(objects.read)
    assert list(files.values()) == [data[:CHUNK]]  # the refused chunks left no object
    await upload(api, blob_id, data, start=CHUNK)

    # The database holds rows without bytes; the folder holds exactly the ciphertext chunks.
    rows = await chunk_rows(operation.server)
    assert [(r.offset, r.length, r.data) for r in rows] == [
        (o, min(CHUNK, len(data) - o), None) for o in range(0, len(data), CHUNK)
    ]
    files = await asyncio.to_thread(objects.read)
    assert sorted(files) == sorted(r.object_key for r in rows)
    assert b"".join(files[r.object_key] for r in rows) == data
    if objects.spec.startswith("file:"):
        root = Path(objects.spec.removeprefix("file:"))
        assert stat.S_IMODE((root / blob_id).stat().st_mode) == 0o700
        assert {stat.S_IMODE((root / k).stat().st_mode) for k in files} == {0o600}

    reader = operation.actors["coordinator"].api
    whole = await reader.download_blob(blob_id)
    assert whole == data
    await asyncio.to_thread(decrypt_file, io.BytesIO(whole), io.BytesIO(), meta)
    span = (CHUNK - 100, 2 * CHUNK + 50)  # crosses two chunk boundaries
    assert await reader.download_blob(blob_id, *span) == data[span[0] : span[1]]

    # A blob whose bytes miss their declared hash is reset, and its objects go with it.
    other = bytes(2 * CHUNK)
    wrong = (await api.create_blob(operation.id, "seizures", len(other),
                                   hashlib.sha256(b"not these").digest())).blob_id  # fmt: skip
    with pytest.raises(BadRequestError, match="reset"):
        await upload(api, wrong, other)
    files = await asyncio.to_thread(objects.read)
    assert not any(k.startswith(wrong) for k in files)
    assert len(files) == len(rows)

    # The purge of the archived operation deletes every object of its blobs.
    ctx = operation.server.ctx
    await operation.actors["coordinator"].api.set_phase(operation.id, "archived")
    ctx.clock = lambda: operation.world.now + 400 * DAY
    await retention.purge(ctx, operation.id)
    assert await asyncio.to_thread(objects.read) == {}
    assert await chunk_rows(operation.server) == []


@pytest.mark.parametrize("value", ["file:relative/blobs", "s4://bucket", "s3://", ""])
def test_blob_store_setting_names_what_it_expects(value):
    with pytest.raises(ConfigError, match="'blob_store': expected 'database', 'file:/"):
        Settings(blob_store=value)
