"""The outbox part against the real server: queued, sent once, refused items set aside."""

from __future__ import annotations


async def test_queued_items_are_sent_once_and_arrive_verified(onboarded):
    """Items sealed into the outbox wait there until a flush sends each exactly once."""
    fr, de, op = onboarded.clients["fr-customs"], onboarded.clients["de-customs"], "op-stop-v"
    await fr.verifier.sync()
    ids = fr.outbox.enqueue(op, "seizures", [("text", {"text": f"n{n}"}) for n in range(3)])
    assert [i.message_id for i in fr.store.pending(10)] == ids
    assert await fr.outbox.flush() == 3
    assert await fr.outbox.flush() == 0
    await de.verifier.sync()
    assert [m.message_id for m in de.read(op, "seizures")] == ids


async def test_an_item_the_server_refuses_is_set_aside(onboarded):
    """A message the charter forbids is refused for good, warned about, and unblocks the rest."""
    fr, op = onboarded.clients["fr-customs"], "op-stop-v"
    await fr.verifier.sync()
    fr.outbox.enqueue(op, "plan", [("text", {"text": "customs may not post the plan"})])
    assert await fr.outbox.flush() == 0
    assert fr.store.pending(10) == []
    assert [w[4] for w in fr.store.warnings()] == ["submission-refused"]


async def test_seizure_records_are_submitted_exactly_once(onboarded):
    """Submitting the same records twice posts each record once, under the same ids."""
    fr, de, op = onboarded.clients["fr-customs"], onboarded.clients["de-customs"], "op-stop-v"
    records = [
        {"record_id": f"FR-{n}", "case_ref": "C-1", "reporting_country": "FR",
         "seizure_date": "2025-03-01", "transport_mode": "express", "ecommerce": True,
         "goods": [{"category": "ipr", "quantity_items": 4}]}
        for n in range(2)
    ]  # fmt: skip
    await fr.verifier.sync()
    first = await fr.outbox.post_seizures(op, records)
    again = await fr.outbox.post_seizures(op, records)
    assert first == again
    await de.verifier.sync()
    assert sorted(m.message_id for m in de.read(op, "seizures")) == sorted(first)
