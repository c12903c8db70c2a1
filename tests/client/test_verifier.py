"""The verifier part against the real server: charters, entries and the device's group state."""

from __future__ import annotations

import pytest

from opseal.client.errors import ClientError
from opseal.client.verifier import IntegrityWarning, SyncReport
from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey

from .conftest import enrol_client


async def test_a_charter_from_another_root_is_refused_and_nothing_is_pinned(server, onboarded):
    """A new device pinning a root that did not sign the charter refuses it with a warning and
    pins nothing; the right root then verifies, and the warning is resolved."""
    laptop = await enrol_client(
        server,
        onboarded.home,
        "de-customs",
        "de-user-2",
        "de-laptop",
        onboarded.roots["de-customs"],
    )
    onboarded.clients["de-laptop"] = laptop  # closed by the fixture
    with pytest.raises(IntegrityWarning, match="charter of 'op-stop-v' refused"):
        await laptop.verifier.pin(onboarded.operation_id, SigningKey.generate().verify_key.key_id)
    assert [w[4] for w in laptop.store.warnings()] == ["charter-refused"]
    assert laptop.store.charters(onboarded.operation_id) == []
    assert laptop.store.pin(onboarded.operation_id) is None
    await laptop.verifier.pin(onboarded.operation_id, onboarded.roots["wco"].verify_key.key_id)
    assert laptop.store.warnings() == []
    with pytest.raises(IntegrityWarning, match="already pinned"):  # a verified root stays
        await laptop.verifier.pin(onboarded.operation_id, SigningKey.generate().verify_key.key_id)


async def test_a_forged_entry_after_a_gap_is_refused_and_both_are_recorded(onboarded):
    """An entry past a gap records the gap, refuses the forgery, and advances the position."""
    de, op = onboarded.clients["de-customs"], onboarded.operation_id
    await de.verifier.sync()
    position = de.store.position(op, "seizures")
    report = SyncReport()
    forged = {"operation_id": op, "area": "seizures", "seq": position + 3, "kind": "message",
              "body": b64e(b"not an envelope")}  # fmt: skip
    await de.verifier.ingest(forged, report)
    assert (report.entries, report.messages, report.refused) == (1, 0, 1)
    assert [w[4] for w in de.store.warnings()] == ["gap", "message-refused"]
    assert de.store.position(op, "seizures") == position + 3


async def test_current_state_is_only_for_areas_the_device_is_in(onboarded):
    """The rights holder has a verified state in the stakeholder area and none in seizures."""
    brand, op = onboarded.clients["brandx"], onboarded.operation_id
    await brand.verifier.sync()
    state, secret = brand.verifier.current(op, "stakeholders")
    assert state.member(brand.device_id) is not None
    assert len(secret) == 32
    with pytest.raises(ClientError, match="not a member of op-stop-v/seizures"):
        brand.verifier.current(op, "seizures")
