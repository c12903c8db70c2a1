"""The receipts and audit parts against the real server."""

from __future__ import annotations

import asyncio

import pytest

from opseal.client.errors import ClientError
from opseal.crypto.encoding import b64d


async def test_a_receipt_reaches_the_coordinator(onboarded):
    """A verified message acknowledged by France shows France's device as having acked it."""
    wco, fr, op = onboarded.clients["wco"], onboarded.clients["fr-customs"], "op-stop-v"
    message_id = await wco.post(op, "plan", "text", {"text": "plan"}, requires_ack=True)
    await fr.verifier.sync()
    await fr.receipts.ack(message_id)
    await wco.verifier.sync()
    answer = await wco.receipts.acks(message_id)
    status = next(o for o in answer["organisations"] if o["org_id"] == "fr-customs")
    assert status["acked"] == ["fr-customs-device"]


async def test_only_verified_messages_are_acknowledged(onboarded):
    """Acknowledging a message this device has not verified is refused before any request."""
    fr = onboarded.clients["fr-customs"]
    with pytest.raises(ClientError, match="not among this device's verified messages"):
        await fr.receipts.ack("00000000-0000-4000-8000-000000000000")


async def test_the_auditor_remembers_the_checkpoint_it_verified(onboarded):
    """Each verification stores the checkpoint, and the next run proves the log extends it."""
    wco = onboarded.clients["wco"]
    log_key = (await asyncio.to_thread(wco.profile.info)).log_key
    first = await wco.auditor.verify(b64d(log_key))
    assert wco.store.get("audit-checkpoint") == first.checkpoint.to_bytes()
    await wco.post("op-stop-v", "plan", "text", {"text": "more"})
    second = await wco.auditor.verify(b64d(log_key))
    assert second.size > first.size
    assert first.entries_checked == first.size
