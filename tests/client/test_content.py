"""Attachments, alerts, seizure records from CSV and the real-time tail, against the real server."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import select, update

from opseal.client import content
from opseal.client.attachments import AttachmentRefused
from opseal.client.client import Client
from opseal.client.errors import ClientError
from opseal.client.profile import Profile
from opseal.client.seizures import RecordError, read_seizures_csv
from opseal.server.http.stream import HUB
from opseal.server.storage.tables import blob_chunks, blobs
from opseal.wire.stream import StreamIdle

from .conftest import PASSPHRASE

SMALL = 64 * 1024  # the server's smallest chunk: several chunks for a small file
HEADER = (
    "record_id,case_ref,reporting_country,seizure_date,transport_mode,ecommerce,category,"
    "description,quantity_items,weight_kg\n"
)


def random_file(path, size: int):
    path.write_bytes(os.urandom(size))
    return path


async def shared_photo(onboarded, tmp_path, size: int = 5 * SMALL + 123):
    """The French officer uploads a photo and posts a seizure that references it."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    photo = random_file(tmp_path / "photo.jpg", size)
    attachment = await fr.upload(onboarded.operation_id, "seizures", photo, chunk_size=SMALL)
    record = {
        "record_id": "FR-77",
        "case_ref": "C-77",
        "reporting_country": "FR",
        "seizure_date": "2025-05-14",
        "transport_mode": "express",
        "ecommerce": True,
        "goods": [{"category": "ipr", "quantity_items": 40}],
        "attachments": [attachment.to_json()],
    }
    await fr.post(onboarded.operation_id, "seizures", "seizure", content.seizure(record))
    return photo, attachment


async def test_attachment_round_trip_reaches_another_member(onboarded, tmp_path):
    """A multi-chunk photo uploaded by one officer is downloaded and decrypted by another."""
    photo, attachment = await shared_photo(onboarded, tmp_path)
    de = onboarded.clients["de-customs"]
    await de.sync()
    [message] = de.read(onboarded.operation_id, "seizures")
    [ref] = content.attachments_of(message.json())
    assert ref == attachment
    assert ref.meta.media_type == "image/jpeg"
    moved: list[int] = []
    out = await de.download(
        ref.meta, ref.blob_id, tmp_path / "out.jpg", progress=moved.append, chunk_size=SMALL
    )
    assert out.read_bytes() == photo.read_bytes()
    assert sum(moved) == ref.meta.ciphertext_size
    assert len(moved) > 4


async def test_interrupted_upload_resumes_where_the_server_stands(onboarded, tmp_path):
    """An upload cut after two chunks resumes, after a restart, from the server's count."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    photo = random_file(tmp_path / "scan.pdf", 6 * SMALL)
    real_put, sent = fr.api.put_blob_chunk, []

    async def cut_after_two(blob_id, offset, data):
        if len(sent) == 2:
            raise ConnectionResetError("cut")
        sent.append(offset)
        return await real_put(blob_id, offset, data)

    fr.api.put_blob_chunk = cut_after_two
    with pytest.raises(ConnectionResetError):
        await fr.upload(onboarded.operation_id, "seizures", photo, chunk_size=SMALL)
    await fr.close()
    fr = onboarded.clients["fr-customs"] = await Client.open(
        Profile("fr-customs-device", onboarded.home), PASSPHRASE
    )
    real_put, offsets = fr.api.put_blob_chunk, []

    async def record(blob_id, offset, data):
        offsets.append(offset)
        return await real_put(blob_id, offset, data)

    fr.api.put_blob_chunk = record
    moved: list[int] = []
    attachment = await fr.upload(
        onboarded.operation_id, "seizures", photo, progress=moved.append, chunk_size=SMALL
    )
    assert offsets[0] == 2 * SMALL
    assert moved[0] == 2 * SMALL
    assert sum(moved) == attachment.meta.ciphertext_size
    assert not list((fr.profile.path / "uploads").iterdir())
    out = await onboarded.clients["de-customs"].download(
        attachment.meta, attachment.blob_id, tmp_path / "out.pdf"
    )
    assert out.read_bytes() == photo.read_bytes()


async def flip_a_byte(server, blob_id: str) -> None:
    async with server.ctx.engine.begin() as conn:
        row = (
            await conn.execute(
                select(blob_chunks.c.offset, blob_chunks.c.data)
                .where(blob_chunks.c.blob_id == blob_id)
                .order_by(blob_chunks.c.offset.desc())
                .limit(1)
            )
        ).one()
        data = bytearray(row.data)
        data[len(data) // 2] ^= 0x01
        await conn.execute(
            update(blob_chunks)
            .where(blob_chunks.c.blob_id == blob_id, blob_chunks.c.offset == row.offset)
            .values(data=bytes(data))
        )


async def test_tampered_blob_is_refused_without_output(onboarded, server, tmp_path):
    """A blob altered in the server's database is refused and no output file appears."""
    _, attachment = await shared_photo(onboarded, tmp_path)
    await flip_a_byte(server, attachment.blob_id)
    de = onboarded.clients["de-customs"]
    dest = tmp_path / "tampered.jpg"
    with pytest.raises(AttachmentRefused, match="SHA-256"):
        await de.download(attachment.meta, attachment.blob_id, dest, chunk_size=SMALL)
    assert not dest.exists()
    assert [w for w in de.warnings() if w[4] == "attachment-refused"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tampered")]


async def test_swapped_blob_is_refused_without_output(onboarded, server, tmp_path):
    """A server that serves another blob than the signed one is caught before decryption."""
    _, wanted = await shared_photo(onboarded, tmp_path)
    fr = onboarded.clients["fr-customs"]
    other = await fr.upload(
        onboarded.operation_id, "seizures", random_file(tmp_path / "other.bin", 2 * SMALL)
    )
    dest = tmp_path / "swapped.jpg"
    with pytest.raises(AttachmentRefused):
        await onboarded.clients["de-customs"].download(wanted.meta, other.blob_id, dest)
    assert not dest.exists()
    async with server.ctx.engine.connect() as conn:
        assert (
            await conn.execute(select(blobs.c.complete).where(blobs.c.blob_id == other.blob_id))
        ).scalar_one()


async def test_alert_is_answered_and_the_coordinator_reads_both(onboarded):
    """An alert to the German administration gets its response, and the coordinator sees it."""
    op = onboarded.operation_id
    fr, de, wco = (onboarded.clients[o] for o in ("fr-customs", "de-customs", "wco"))
    for client in (fr, de):
        await client.sync()
    alert_id = await fr.alert(
        op, "seizures", ["de-customs"], "Inspect AWB 123-4567 at FRA", "2025-05-20"
    )
    with pytest.raises(ClientError, match="not a verified alert"):
        await de.respond(op, "seizures", alert_id, "not synced yet")
    await de.sync()
    response_id = await de.respond(op, "seizures", alert_id, "Inspected: 1,200 fake tablets")
    await fr.sync()
    with pytest.raises(ClientError, match="addressed to de-customs"):
        await fr.respond(op, "seizures", alert_id, "not ours to answer")
    await wco.sync()
    alert = wco.store.message(alert_id)
    assert alert.org == "fr-customs"
    assert alert.json() == {
        "targets": ["de-customs"],
        "action": "Inspect AWB 123-4567 at FRA",
        "deadline": "2025-05-20",
    }
    [response] = wco.responses(alert_id)
    assert (response.message_id, response.org) == (response_id, "de-customs")
    assert response.json()["outcome"] == "Inspected: 1,200 fake tablets"


async def test_alert_targets_must_be_members(onboarded):
    """An alert to an organisation outside the operation is refused before anything is sent."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    with pytest.raises(content.ContentError, match="targets: not members of op-stop-v: nl"):
        await fr.alert(onboarded.operation_id, "seizures", ["nl"], "inspect")
    assert fr.store.pending() == []


CSV_ROWS = [
    "FR-1,C-1,FR,2025-05-12,postal,yes,medicines,Tablets,1200,0.8",
    "FR-1,C-1,FR,2025-05-12,postal,yes,ipr,Watches,30,2.5",
    "FR-2,C-1,FR,2025-13-01,express,no,ipr,Bags,10,5",
    "FR-3,C-2,FR,2025-05-13,air cargo,no,cosmetics,Creams,5,1",
    "FR-4,C-2,FR,2025-05-14,road,no,drugs,Pills,-5,0.1",
    "FR-5,,FR,2025-05-14,rail,no,other,Misc,1,",
    "FR-6,C-3,fr,2025-05-15,sea cargo,yes,hazardous,Batteries,,120.5",
]


async def test_csv_import_reports_bad_rows_and_submits_valid_records_once(onboarded, tmp_path):
    """Invalid rows are reported by row and column; valid records arrive once, re-runs add none."""
    op = onboarded.operation_id
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await fr.sync()
    path = tmp_path / "seizures.csv"
    path.write_text(HEADER + "\n".join(CSV_ROWS) + "\n")
    records, errors = read_seizures_csv(path)
    assert [(e.row, e.column, e.record_id) for e in errors] == [
        (4, "seizure_date", "FR-2"),
        (5, "category", "FR-3"),
        (6, "quantity_items", "FR-4"),
        (7, "case_ref", "FR-5"),
    ]
    assert "2025-13-01" in errors[0].reason
    assert "cosmetics" in errors[1].reason
    assert [r["record_id"] for r in records] == ["FR-1", "FR-6"]
    assert [g["category"] for g in records[0]["goods"]] == ["medicines", "ipr"]
    assert records[1]["transport_mode"] == "sea-cargo"
    assert records[1]["reporting_country"] == "FR"
    first = await fr.post_seizures(op, records)
    assert await fr.post_seizures(op, read_seizures_csv(path)[0]) == first
    fixes = {"2025-13-01": "2025-05-13", "cosmetics": "other", ",-5,": ",5,", ",,FR,": ",C-2,FR,"}
    fixed_text = "\n".join(CSV_ROWS)
    for wrong, right in fixes.items():
        fixed_text = fixed_text.replace(wrong, right)
    path.write_text(HEADER + fixed_text + "\n")
    fixed, errors = read_seizures_csv(path)
    assert errors == []
    done: list[int] = []
    await fr.post_seizures(op, fixed, progress=done.append)
    assert sum(done) == 6
    await de.sync()
    seen = [m.json()["record_id"] for m in de.read(op, "seizures", content_type="seizure")]
    assert sorted(seen) == ["FR-1", "FR-2", "FR-3", "FR-4", "FR-5", "FR-6"]
    assert [m.message_id for m in de.read(op, "seizures")][:2] == first


def test_csv_header_without_a_required_column_is_refused(tmp_path):
    """A file lacking a required column is refused as a whole, naming the column."""
    path = tmp_path / "seizures.csv"
    path.write_text("record_id;case_ref;reporting_country;seizure_date;ecommerce;category\n")
    with pytest.raises(RecordError, match="row 1, column transport_mode: required column"):
        read_seizures_csv(path)


def test_csv_rows_of_one_record_must_agree(tmp_path):
    """A goods line whose record-level cells contradict the record's first row withholds it."""
    path = tmp_path / "seizures.csv"
    path.write_text(
        HEADER + CSV_ROWS[0] + "\n" + CSV_ROWS[1].replace("C-1", "C-9") + ",extra\n" + CSV_ROWS[6]
    )
    records, errors = read_seizures_csv(path)
    assert [r["record_id"] for r in records] == ["FR-6"]
    assert [(e.row, e.column) for e in errors] == [(3, "(surplus)"), (3, "case_ref")]
    assert "row 2" in errors[1].reason


def test_csv_from_a_spreadsheet_with_semicolons_and_a_byte_order_mark_is_read(tmp_path):
    """A UTF-8 file with a BOM, semicolons and a trailing separator reads like a plain CSV."""
    path = tmp_path / "seizures.csv"
    rows = [HEADER.strip(), CSV_ROWS[0], CSV_ROWS[6]]
    path.write_text("\ufeff" + "\n".join(r.replace(",", ";") + ";" for r in rows) + "\n")
    records, errors = read_seizures_csv(path)
    assert errors == []
    assert [(r["record_id"], r["goods"][0].get("weight_kg")) for r in records] == [
        ("FR-1", 0.8),
        ("FR-6", 120.5),
    ]


async def test_tail_delivers_new_messages_and_resumes_after_a_cut(onboarded, server):
    """Tail hands over a message posted after it started, and another posted after a cut."""
    op = onboarded.operation_id
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await de.sync()
    received: list[str] = []
    arrived, caught_up = asyncio.Event(), asyncio.Event()
    connects, idle_on, cursors = 0, set(), []
    real_stream = fr.api.stream

    async def watched_stream(cursor=""):
        nonlocal connects
        connects += 1
        number = connects
        cursors.append(cursor)
        async for item in real_stream(cursor):
            if isinstance(item, StreamIdle):
                idle_on.add(number)
                caught_up.set()
            yield item

    async def handler(message):
        received.append(message.json()["text"])
        arrived.set()

    async def post_when_caught_up(text: str, connection: int) -> None:
        # The server may hold back an entry stored while a stream is still catching up.
        while not any(n >= connection for n in idle_on):
            caught_up.clear()
            await asyncio.wait_for(caught_up.wait(), 10)
        arrived.clear()
        await de.post(op, "seizures", "text", content.text(text))
        await asyncio.wait_for(arrived.wait(), 10)

    fr.api.stream = watched_stream
    stop = asyncio.Event()
    task = asyncio.create_task(fr.tail(handler, stop=stop))
    await post_when_caught_up("first", connection=1)
    for subscriber in list(server.runner.app[HUB].subscribers):
        await subscriber.ws.close()
    await post_when_caught_up("second", connection=2)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert received == ["first", "second"]
    assert connects >= 2
    assert cursors[0] == ""
    assert cursors[1]  # the reconnection resumes from the stored cursor
    assert not fr.warnings()
    assert [m.json()["text"] for m in fr.read(op, "seizures")] == received
