"""The audit log by need to know (issue 12): each device reads what it may, auditors all."""

from __future__ import annotations

import json
import time

import pytest

from opseal.client.audit import AuditError, encode_entry, verify_audit, verify_entry
from opseal.client.errors import NotMemberError
from opseal.crypto.encoding import b64d
from opseal.crypto.group import create_area
from opseal.crypto.merkle import Checkpoint, leaf_hash, verify_inclusion
from opseal.server.config import Settings

from .test_audit import all_entries, log_key


@pytest.fixture
def settings(database_url) -> Settings:
    """The audit office holds the instance auditor role."""
    return Settings(
        database_url=database_url, rate_limit_per_minute=100_000, auditor_orgs="auditor-org"
    )


async def _plan_commit_and_refusals(operation) -> None:
    """A commit in the customs-only area 'plan', and refusals by the stakeholder and a
    stranger (entries that would carry client addresses)."""
    coordinator = operation.actors["coordinator"]
    commit, _, _ = create_area(
        operation.world.charter, coordinator.identity, instance_id=operation.instance_id,
        area="plan", now=int(time.time()),
    )  # fmt: skip
    await coordinator.api.post_commit(operation.id, "plan", commit.to_bytes())
    with pytest.raises(NotMemberError):
        await operation.actors["outsider"].api.operation(operation.id)
    with pytest.raises(Exception):  # noqa: B017,PT011 -- any refusal will do
        await operation.actors["stakeholder"].api.events(operation.id, "plan")


async def test_stakeholder_sees_no_customs_only_entry_and_no_address(operation):
    """A stakeholder reading the log sees no entry of a customs-only area, no other
    organisation's logins and no address, while an auditor sees every entry; the inclusion
    proofs of the stakeholder's entries and its verification of the whole log still hold."""
    await _plan_commit_and_refusals(operation)
    stakeholder = operation.actors["stakeholder"].api
    auditor = operation.actors["observer"].api

    seen = await all_entries(stakeholder)
    everything = await all_entries(auditor)

    assert len(seen) == len(everything)
    assert all(item.entry is not None for item in everything)
    full = [item.entry for item in everything]
    assert any(e.get("area") == "plan" for e in full)
    assert any(e["event"] == "refused" and e.get("device") == "outsider-device" for e in full)
    shown = [item.entry for item in seen if item.entry is not None]
    assert shown
    assert len(shown) < len(full)
    assert not [e for e in shown if e.get("area") == "plan"]
    assert not [e for e in shown if e["event"] == "login" and e["org"] != "brandx"]
    assert [e for e in shown if e["event"] == "refused" and e["device"] == "stakeholder-device"]
    text = json.dumps(full)
    assert "127.0.0.1" not in text
    assert '"remote"' not in text

    checkpoint = Checkpoint.from_bytes(b64d((await stakeholder.audit_checkpoint()).checkpoint))
    assert checkpoint.size == len(seen)
    for item in seen:
        if item.entry is None:
            continue
        proof = await stakeholder.audit_inclusion_proof(item.index, checkpoint.size)
        leaf = leaf_hash(encode_entry(item.entry))
        verify_inclusion(leaf, item.index, checkpoint.size, proof, checkpoint.root)
    report = await verify_audit(stakeholder, log_key(operation.server), None)
    assert report.hidden == len(full) - len(shown)
    assert report.entries_checked == len(full)
    hidden_index = next(item.index for item in seen if item.entry is None)
    with pytest.raises(AuditError, match="not for this device"):
        await verify_entry(stakeholder, report.checkpoint, hidden_index)


async def test_refusals_carry_a_keyed_address_tag(operation):
    """A refusal records a keyed hash of the client address, the same for the same address,
    and never the address."""
    await _plan_commit_and_refusals(operation)
    refusals = [
        item.entry
        for item in await all_entries(operation.actors["observer"].api)
        if item.entry["event"] == "refused"
    ]
    tags = {e["remote_tag"] for e in refusals}
    assert len(refusals) >= 2
    assert len(tags) == 1  # every request came from 127.0.0.1
    assert "127.0.0.1" not in next(iter(tags))
