"""The client end to end against the real server: onboarding, posting, reading, outbox."""

from __future__ import annotations

import stat
import uuid

import pytest

from opseal.client.client import Client, check_server_url
from opseal.client.errors import ClientError
from opseal.client.profile import Profile

from .conftest import PASSPHRASE, enrol_client


async def test_members_post_and_read_verified_messages(onboarded):
    """A French officer's seizure reaches the German officer verified and decrypted."""
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await fr.sync()
    message_id = await fr.post(
        onboarded.operation_id,
        "seizures",
        "seizure",
        {"record_id": "FR-1", "goods": [{"category": "medicines"}]},
    )
    await de.sync()
    [message] = de.read(onboarded.operation_id, "seizures")
    assert message.message_id == message_id
    assert message.org == "fr-customs"
    assert message.json()["record_id"] == "FR-1"
    assert not de.warnings()


async def test_stakeholder_reads_only_the_stakeholder_area(onboarded):
    """The rights holder is admitted to the stakeholder area and to nothing else."""
    coordinator, brand = onboarded.clients["wco"], onboarded.clients["brandx"]
    await coordinator.post(
        onboarded.operation_id, "plan", "document", {"title": "Operational Plan"}
    )
    await coordinator.post(onboarded.operation_id, "stakeholders", "text", {"text": "Briefing"})
    await brand.sync()
    assert [m.area for m in brand.read(onboarded.operation_id)] == ["stakeholders"]
    with pytest.raises(ClientError, match="not a member"):
        await brand.post(onboarded.operation_id, "seizures", "text", {"text": "x"})


async def test_outbox_keeps_submissions_until_confirmed(onboarded):
    """Queued records survive a client restart and are sent exactly once."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    ids = fr.enqueue(
        onboarded.operation_id, "seizures", [("seizure", {"record_id": f"R{n}"}) for n in range(20)]
    )
    await fr.close()
    reopened = await Client.open(Profile("fr-customs-device", onboarded.home), PASSPHRASE)
    onboarded.clients["fr-customs"] = reopened
    assert await reopened.flush() == 20
    assert await reopened.flush() == 0
    await reopened.sync()
    assert [m.message_id for m in reopened.read(onboarded.operation_id, "seizures")] == ids


async def test_profile_directory_is_private(onboarded):
    """The profile folder is 0700 and key files 0600, and key files hold no plain keys."""
    profile = onboarded.clients["fr-customs"].profile
    assert stat.S_IMODE(profile.path.stat().st_mode) == 0o700
    device_key = profile.path / "device.key"
    assert stat.S_IMODE(device_key.stat().st_mode) == 0o600
    seed = onboarded.clients["fr-customs"].identity.signing_key.private_bytes()
    assert seed not in device_key.read_bytes()


def test_plain_http_only_to_loopback():
    """HTTPS is required unless the server is on loopback or HTTP is explicitly allowed."""
    check_server_url("https://opseal.example.org")
    check_server_url("http://127.0.0.1:8080")
    with pytest.raises(ClientError, match="use https"):
        check_server_url("http://opseal.example.org")
    check_server_url("http://opseal.example.org", allow_http=True)


async def test_late_joiner_reads_the_shared_plan_history(onboarded, server):
    """A device admitted after the plan was posted reads it: 'shared' history reaches it."""
    coordinator = onboarded.clients["wco"]
    plan_id = await coordinator.post(
        onboarded.operation_id, "plan", "document", {"title": "Operational Plan", "attachments": []}
    )
    late = await enrol_client(
        server,
        onboarded.home,
        "fr-customs",
        "fr-late",
        "fr-late-device",
        onboarded.roots["fr-customs"],
    )
    onboarded.clients["fr-late"] = late
    await late.join(onboarded.operation_id, onboarded.roots["wco"].verify_key.key_id)
    await coordinator.admit()
    await late.sync()
    assert [m.message_id for m in late.read(onboarded.operation_id, "plan")] == [plan_id]
    assert not [w for w in late.warnings() if w[4] != "gap"]


async def test_a_refused_submission_does_not_block_the_outbox(onboarded):
    """A message the server refuses for good is set aside; the others are still sent."""
    fr = onboarded.clients["fr-customs"]
    op = onboarded.operation_id
    await fr.sync()
    taken = uuid.uuid4()
    fr.enqueue(op, "seizures", [("text", {"text": "first"})], message_ids=[taken])
    await fr.flush()
    # The device lost its outbox row and reuses its own id for other content: 409 conflict,
    # for good (another device's use of an id no longer blocks anyone, design §15).
    fr.store.db.execute("DELETE FROM outbox WHERE message_id = ?", (str(taken),))
    fr.enqueue(op, "seizures", [("text", {"text": "clash"})], message_ids=[taken])
    fr.enqueue(op, "seizures", [("text", {"text": "later"})])
    assert await fr.flush() == 1
    statuses = {row[2]: row[3] for row in fr.store.outbox_summary()}
    assert statuses == {"refused": 1, "sent": 1}
    assert any(w[4] == "submission-refused" for w in fr.warnings())
    await fr.sync()
    texts = [m.json()["text"] for m in fr.read(op, "seizures")]
    assert texts == ["first", "later"]
