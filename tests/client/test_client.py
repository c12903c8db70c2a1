"""The client end to end against the real server: onboarding, posting, reading, outbox."""

from __future__ import annotations

import stat

import pytest

from opseal.client.client import Client, check_server_url
from opseal.client.errors import ClientError
from opseal.client.profile import Profile

from .conftest import PASSPHRASE


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
