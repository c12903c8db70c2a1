"""A compromised server against the TypeScript client core (design §11, §17): the attacks of
``tests/client/test_malicious.py`` that apply to a browser, played against a TypeScript device
made by request. Whatever the server stores or serves, the device shows a warning with a
reason and never the refused content."""
# ruff: noqa: F811 -- the attacker fixture imported from the client suite is a parameter here

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

import pytest

from opseal.client import content
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.group import Commit, GroupState

from ..client.conftest import PASSPHRASE
from ..client.malicious import attacker, forge_envelope  # noqa: F401 (attacker: a fixture)
from .conftest import NodeError
from .test_core import OP, browser_device, enrolled_device, invitation, messages

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def warnings(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["warning"], e["reason"]) for e in entries if e["kind"] == "warning"]


async def test_replayed_moved_and_unauthorised_messages_are_refused(server, attacker, node):
    """An envelope stored again (also after the device restarts), moved to another area, or
    written by an organisation the charter does not let post there is a warning, not content."""
    await browser_device(attacker.onboarded, server, node)
    fr, de = attacker.onboarded.clients["fr-customs"], attacker.onboarded.clients["de-customs"]
    await de.sync()
    await fr.sync()
    posted = await de.post(OP, "seizures", "text", content.text("DE-1"))
    [(seq, _)] = await attacker.db.messages(OP, "seizures")
    await attacker.db.copy(OP, "seizures", seq)
    await attacker.db.copy(OP, "seizures", seq, to_area="plan")
    latest = fr.store.latest_state(OP, "plan")
    assert latest is not None
    epoch = GroupState.from_bytes(latest[1]).epoch
    secret = fr.store.secret(OP, "plan", epoch)
    assert secret is not None
    forged = forge_envelope(
        fr.identity, secret, instance_id=fr.info.instance_id, operation_id=OP, area="plan",
        epoch=epoch, counter=1, payload={"text": "Revised Operational Plan"},
    )  # fmt: skip
    await attacker.db.append(OP, "plan", "message", fr.device_id, forged, epoch)

    report = await node("sync")

    assert report["refused"] == 3
    seizures = await node("read", op=OP, area="seizures")
    assert [m["messageId"] for m in messages(seizures)] == [posted]
    [(kind, reason)] = warnings(seizures)
    assert kind == "message-refused"
    assert "already seen" in reason
    plan = await node("read", op=OP, area="plan")
    assert messages(plan) == []
    reasons = sorted(reason for _, reason in warnings(plan))
    assert "served in op-stop-v/plan" in reasons[0]
    assert "may not post in area 'plan'" in reasons[1]
    assert "Revised Operational Plan" not in str(plan)

    # the replay tracker is kept: a restarted device still refuses the same envelope
    await node("open", passphrase=PASSPHRASE)
    await node("login")
    await attacker.db.copy(OP, "seizures", seq)
    assert (await node("sync"))["refused"] == 1
    assert [m["messageId"] for m in messages(await node("read", op=OP, area="seizures"))] == [
        posted
    ]


async def test_a_forged_commit_is_refused_and_its_epoch_stays_unreadable(server, attacker, node):
    """A commit whose signature the server altered is refused before any secret is opened;
    messages of the epoch it would start are refused, never shown."""
    await browser_device(attacker.onboarded, server, node)
    await node("sync")
    wco, fr = attacker.onboarded.clients["wco"], attacker.onboarded.clients["fr-customs"]
    latest = wco.store.latest_state(OP, "seizures")
    assert latest is not None
    current = GroupState.from_bytes(latest[1]).epoch

    def forge(commit: Commit) -> Commit:
        if commit.area != "seizures" or commit.epoch <= current:
            return commit
        return replace(commit, signature=bytes([commit.signature[0] ^ 1]) + commit.signature[1:])

    attacker.proxy.on_commits(forge)
    await node("open", passphrase=PASSPHRASE, server=attacker.proxy.url)
    await node("login")
    await wco.sync()
    assert await wco.rotate(OP, "seizures")
    await fr.sync()
    await fr.post(OP, "seizures", "text", content.text("after the rotation"))

    report = await node("sync")

    assert (report["refused"], report["commits"]) == (2, 0)
    entries = await node("read", op=OP, area="seizures")
    assert messages(entries) == []
    [(commit_kind, commit_reason), (message_kind, message_reason)] = warnings(entries)
    assert (commit_kind, commit_reason) == ("commit-refused", "commit does not verify")
    assert message_kind == "message-refused"
    assert (
        message_reason
        == f"message of epoch {current + 1} served while seizures is at epoch {current}"
    )
    assert "after the rotation" not in str(entries)


async def test_a_message_signed_after_its_device_was_revoked_is_refused(server, attacker, node):
    """A German device's key is stolen and revoked by its focal point; the server stores what
    the thief signs afterwards. The TypeScript device, which verified the revocation against
    the German root in the charter, refuses it and still shows what was written before."""
    await browser_device(attacker.onboarded, server, node)
    de = attacker.onboarded.clients["de-customs"]
    await de.sync()
    before = await de.post(OP, "seizures", "text", content.text("before the theft"))
    latest = de.store.latest_state(OP, "seizures")
    assert latest is not None
    epoch = GroupState.from_bytes(latest[1]).epoch
    secret = de.store.secret(OP, "seizures", epoch)
    assert secret is not None
    # revocations take effect to the second (revoked_at <= created_at): a commit of the same
    # second as the revocation would count as made after it
    await asyncio.sleep(1.1)
    await de.revoke_device(attacker.onboarded.roots["de-customs"], de.device_id, "stolen")
    stolen = forge_envelope(
        de.identity, secret, instance_id=de.info.instance_id, operation_id=OP, area="seizures",
        epoch=epoch, counter=2, payload={"text": "after the theft"},
    )  # fmt: skip
    await attacker.db.append(OP, "seizures", "message", de.device_id, stolen, epoch)

    report = await node("sync")
    # the old join requests of the revoked device are reported too, as Python does
    assert report["refused"] == 4

    entries = await node("read", op=OP, area="seizures")
    assert [m["messageId"] for m in messages(entries)] == [before]
    [(_, old_request), (kind, reason)] = warnings(entries)
    assert old_request == "device 'de-customs-device' has been revoked"
    assert kind == "message-refused"
    assert reason == "sender 'de-customs-device' was revoked before it wrote this"


async def test_entries_skipped_in_a_sync_page_are_asked_for_again(server, attacker, node):
    """Entries a sync page skipped leave a gap warning and are asked for again from the area's
    events: served there, they are verified and the warning resolved; withheld there too, the
    gap stays open and says which entries."""
    await browser_device(attacker.onboarded, server, node)
    await node("sync")
    fr = attacker.onboarded.clients["fr-customs"]
    await fr.sync()
    ids = [await fr.post(OP, "seizures", "text", content.text(f"FR-{n}")) for n in range(1, 5)]
    skipped = set(ids[1:3])

    def skip(page: dict[str, Any]) -> dict[str, Any]:
        return {**page, "events": [e for e in page["events"] if e.get("message_id") not in skipped]}

    attacker.proxy.rewrite(r"/api/v1/sync", skip)
    await node("open", passphrase=PASSPHRASE, server=attacker.proxy.url)
    await node("login")
    assert (await node("sync"))["refused"] == 0
    entries = await node("read", op=OP, area="seizures")
    assert [m["content"]["text"] for m in messages(entries)] == ["FR-1", "FR-2", "FR-3", "FR-4"]
    assert warnings(entries) == []  # the gap's warning is resolved

    later = {await fr.post(OP, "seizures", "text", content.text(f"FR-{n}")) for n in (5, 6)}
    await fr.post(OP, "seizures", "text", content.text("FR-7"))
    skipped = later
    attacker.proxy.rewrite(
        r"/api/v1/operations/[^/]+/areas/[^/]+/events",
        lambda body: {
            **body,
            "events": [e for e in body["events"] if e["message_id"] not in later],
        },
    )
    await node("sync")
    entries = await node("read", op=OP, area="seizures")
    texts = [m["content"]["text"] for m in messages(entries)]
    assert texts == ["FR-1", "FR-2", "FR-3", "FR-4", "FR-7"]
    [(kind, reason)] = warnings(entries)
    assert kind == "gap"
    assert "the server skipped entries" in reason


async def test_a_charter_that_does_not_verify_from_the_pin_is_not_kept(server, attacker, node):
    """Joining through a server that serves a charter altered after signing pins nothing;
    once pinned, a rewritten charter is reported and the verified version stays in use."""
    onboarded = attacker.onboarded
    await enrolled_device(onboarded, server, node)
    fingerprint = onboarded.roots["wco"].verify_key.fingerprint

    def alter(body: dict[str, Any]) -> dict[str, Any]:
        last = bytearray(b64d(body["versions"][-1]))
        last[-1] ^= 1
        return {**body, "versions": [*body["versions"][:-1], b64e(bytes(last))]}

    attacker.proxy.rewrite(r"/api/v1/operations/[^/]+/charter", alter)
    await node("open", passphrase=PASSPHRASE, server=attacker.proxy.url)
    await node("login")
    with pytest.raises(NodeError, match="charter of 'op-stop-v' refused"):
        await node("join", invitation=invitation(onboarded, server), fingerprint=fingerprint)
    [operation] = await node("operations")
    assert not operation["pinned"]

    await node("open", passphrase=PASSPHRASE)
    await node("login")
    await node("join", invitation=invitation(onboarded, server), fingerprint=fingerprint)
    with pytest.raises(NodeError, match="does not match the invitation"):
        await node("join", invitation=invitation(onboarded, server), fingerprint="12345 " * 6)
    await node("open", passphrase=PASSPHRASE, server=attacker.proxy.url)
    await node("login")
    [operation] = await node("operations")
    assert operation["pinned"]
    assert "refused" in operation["problem"]
    assert operation["role"] == "customs"  # from the version verified before


async def test_a_swapped_or_altered_attachment_is_refused_before_decryption(
    server, attacker, node, tmp_path
):
    """A blob swapped for another, or altered by one byte, fails the signed ciphertext hash:
    the TypeScript device refuses the download, returns no plaintext and records a warning."""
    await browser_device(attacker.onboarded, server, node)
    fr = attacker.onboarded.clients["fr-customs"]
    await fr.sync()
    photos = []
    for name in ("container.jpg", "seals.jpg"):  # same size, so either blob can stand in
        (tmp_path / name).write_bytes(os.urandom(20_000))
        photos.append(await fr.upload(OP, "seizures", tmp_path / name, "image/jpeg"))
    await fr.post(OP, "seizures", "document", content.document("Photos", photos))
    genuine = await attacker.db.blob(photos[1].blob_id)
    await attacker.db.overwrite_blob(photos[0].blob_id, genuine)  # swapped
    await attacker.db.overwrite_blob(photos[1].blob_id, genuine[:-1] + bytes([genuine[-1] ^ 1]))

    await node("sync")

    [document] = messages(await node("read", op=OP, area="seizures"))
    for reference in document["content"]["attachments"]:
        with pytest.raises(NodeError, match="ciphertext SHA-256 differs from its metadata"):
            await node("download", ref=reference)
    assert [w["kind"] for w in await node("warnings")] == ["attachment-refused"] * 2
