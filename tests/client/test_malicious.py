"""A malicious server against the real client: every attack is detected, reported and refused.

Each test lets the honest server do its work, then tampers with what it stores or answers
(:mod:`.malicious`) and checks that the victim records a warning of a specific kind and that
nothing tampered appears among the messages it shows as genuine.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from opseal.client.attachments import Attachment, AttachmentRefused
from opseal.client.audit import AuditError
from opseal.client.client import Client
from opseal.client.errors import MalformedAnswerError
from opseal.crypto.charter import Charter
from opseal.crypto.group import Commit, GroupState, KeyPackage, create_commit

from .conftest import enrol_client
from .malicious import (
    Attacker,
    attacker,  # noqa: F401 (fixture)
    forge_device,
    forge_envelope,
    substitute_hpke_key,
)

LAPTOP = "fr-customs-laptop"


# -- helpers -------------------------------------------------------------------------------
def refusals(client: Client) -> list[tuple[str, str, str]]:
    """The client's warnings as ``(area, kind, message)``."""
    return [(area, kind, message) for _, _, area, _, kind, message in client.warnings()]


def kinds(client: Client) -> list[tuple[str, str]]:
    return [(area, kind) for area, kind, _ in refusals(client)]


def state(client: Client, op: str, area: str) -> GroupState:
    """The newest group state the client verified for an area."""
    latest = client.store.latest_state(op, area)
    assert latest is not None
    return GroupState.from_bytes(latest[1])


def roster(client: Client, op: str, area: str) -> set[str]:
    return {entry.device_id for entry in state(client, op, area).roster}


async def enrol_laptop(server, attacker: Attacker) -> Client:
    """A second French officer's device, enrolled by the focal point, asking to join."""
    onboarded = attacker.onboarded
    laptop = await enrol_client(
        server, onboarded.home, "fr-customs", "fr-officer-2", LAPTOP, onboarded.roots["fr-customs"]
    )
    onboarded.clients[LAPTOP] = laptop  # closed with the others
    await laptop.join(attacker.op, onboarded.roots["wco"].verify_key.key_id)
    return laptop


def members(attacker: Attacker, *orgs: str) -> list[Client]:
    return [attacker.onboarded.clients[org] for org in orgs]


async def synced(attacker: Attacker, *orgs: str) -> list[Client]:
    """The members' clients, each synced up to the area states the coordinator admitted."""
    clients = members(attacker, *orgs)
    for client in clients:
        await client.sync()
    return clients


# -- membership and keys -------------------------------------------------------------------
async def test_member_injected_without_authorisation_is_refused(server, attacker, monkeypatch):
    """A stored commit by which a German device admits a French one is refused, and so is the
    message of the epoch it claims to open."""
    op = attacker.op
    laptop = await enrol_laptop(server, attacker)
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    package = KeyPackage.create(laptop.identity, operation_id=op, area="seizures", now=de.now())
    with monkeypatch.context() as patch:  # the colluding German device skips the charter rule
        patch.setattr(Charter, "check_may_admit", lambda *args: None)
        commit, forged, secret = create_commit(
            state(de, op, "seizures"), await de.charter(op), de.identity, now=de.now(),
            adds=[package],
        )  # fmt: skip
    await attacker.db.add_commit(commit, forged)
    body = forge_envelope(
        laptop.identity, secret, instance_id=fr.info.instance_id, operation_id=op,
        area="seizures", epoch=forged.epoch, counter=1, payload={"text": "injected"},
    )  # fmt: skip
    await attacker.db.append(op, "seizures", "message", LAPTOP, body, forged.epoch)

    await fr.sync()

    assert kinds(fr) == [("seizures", "commit-refused"), ("seizures", "message-refused")]
    assert "may not admit devices of 'fr-customs'" in refusals(fr)[0][2]
    assert LAPTOP not in roster(fr, op, "seizures")
    assert state(fr, op, "seizures").epoch == 1
    assert fr.read(op, "seizures") == []


async def test_device_injected_into_a_user_is_not_admitted(attacker):
    """A key package whose device certificate the user's key never signed is reported and
    the coordinator's automatic admission leaves it out."""
    op, (wco, fr) = attacker.op, members(attacker, "wco", "fr-customs")
    ghost = forge_device(fr.identity.user_cert, "fr-customs-ghost")
    await attacker.db.add_key_package(
        KeyPackage.create(ghost, operation_id=op, area="seizures", now=int(time.time()))
    )

    assert await wco.admit() == []

    [(area, kind, message)] = refusals(wco)
    assert (area, kind) == ("seizures", "key-package-refused")
    assert "certificate of 'fr-customs-ghost': bad signature" in message
    assert "fr-customs-ghost" not in roster(wco, op, "seizures")


async def test_substituted_key_in_a_key_package_is_not_admitted(server, attacker):
    """A joining device's key package whose HPKE key the server swapped is reported and the
    coordinator seals no epoch secret to the server's key, until the genuine one is served."""
    op = attacker.op
    await enrol_laptop(server, attacker)
    wco = await attacker.victim("wco")
    attacker.proxy.on_key_packages(lambda p: substitute_hpke_key(p) if p.device_id == LAPTOP else p)

    assert await wco.admit() == []

    assert sorted(kinds(wco)) == [
        ("plan", "key-package-refused"),
        ("seizures", "key-package-refused"),
        ("stakeholders", "key-package-refused"),
    ]
    assert all(LAPTOP in message for _, _, message in refusals(wco))
    assert all(LAPTOP not in roster(wco, op, area) for area in ("plan", "seizures"))
    attacker.proxy.rewrites.clear()
    assert await wco.admit() == [LAPTOP] * 3


async def test_substituted_key_in_a_commit_is_refused(server, attacker):
    """A commit whose added device's HPKE key the server swapped is refused, and the epoch it
    opens stays unreadable to the victim."""
    op, wco = attacker.op, attacker.onboarded.clients["wco"]
    laptop = await enrol_laptop(server, attacker)
    de = await attacker.victim("de-customs")
    await de.sync()

    def swap(commit: Commit) -> Commit:
        adds = tuple(substitute_hpke_key(p) if p.device_id == LAPTOP else p for p in commit.adds)
        return replace(commit, adds=adds)

    attacker.proxy.on_commits(swap)
    assert await wco.admit() == [LAPTOP] * 3
    await laptop.sync()
    await laptop.post(op, "seizures", "seizure", {"record_id": "FR-LAPTOP-1"})

    await de.sync()

    assert sorted(kinds(de)) == [
        ("plan", "commit-refused"),
        ("seizures", "commit-refused"),
        ("seizures", "message-refused"),
        ("stakeholders", "commit-refused"),
    ]
    commit_refusals = {m for _, k, m in refusals(de) if k == "commit-refused"}
    assert commit_refusals == {"commit does not verify"}
    assert state(de, op, "seizures").epoch == 1
    assert LAPTOP not in roster(de, op, "seizures")
    assert de.read(op, "seizures") == []


# -- messages ------------------------------------------------------------------------------
async def test_replayed_message_is_refused(attacker):
    """An envelope served again under a new sequence number is refused, even after the
    victim restarts, and shows once."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    message_id = await fr.post(op, "seizures", "seizure", {"record_id": "FR-1"})
    await de.sync()
    [(seq, _)] = await attacker.db.messages(op, "seizures")
    await attacker.db.copy(op, "seizures", seq)

    de = await attacker.victim("de-customs")
    await de.sync()

    [(area, kind, message)] = refusals(de)
    assert (area, kind) == ("seizures", "message-refused")
    assert "already seen" in message
    assert [m.message_id for m in de.read(op, "seizures")] == [message_id]


async def test_dropped_and_reordered_messages_are_reported_as_gaps(attacker):
    """Withheld messages leave a gap warning and their counters listed as missing; a message
    served late is accepted once and leaves the missing list."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    fr.enqueue(op, "seizures", [("seizure", {"record_id": f"FR-{n}"}) for n in range(1, 6)])
    await fr.flush()
    stored = await attacker.db.messages(op, "seizures")
    assert [e.header.counter for _, e in stored] == [1, 2, 3, 4, 5]
    _, (seq2, _), (seq3, third), *_ = stored
    await attacker.db.delete(op, "seizures", [seq2, seq3])

    await de.sync()

    assert de.gaps(op, "seizures") == {fr.device_id: [2, 3]}
    [(area, kind, message)] = refusals(de)
    assert (area, kind) == ("seizures", "gap")
    assert f"{seq2}..{seq3}" in message

    await attacker.db.append(op, "seizures", "message", fr.device_id, third.to_bytes(), 1)
    await de.sync()

    assert de.gaps(op, "seizures") == {fr.device_id: [2]}
    records = [m.json()["record_id"] for m in de.read(op, "seizures")]
    assert records == ["FR-1", "FR-4", "FR-5", "FR-3"]


async def test_message_from_a_removed_member_is_refused(attacker):
    """After the coordinator removes the German device, its posts stored by the server — in
    its last epoch or in the new one — are refused."""
    op, wco = attacker.op, attacker.onboarded.clients["wco"]
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    await wco.sync()
    removal, _, _ = create_commit(
        state(wco, op, "seizures"), await wco.charter(op), wco.identity, now=wco.now(),
        removes=[de.device_id],
    )  # fmt: skip
    await wco.api.post_commit(op, "seizures", removal.to_bytes())
    old_secret = de.store.secret(op, "seizures", 1)
    assert old_secret is not None
    for counter, epoch in ((1, 1), (2, 2)):
        body = forge_envelope(
            de.identity, old_secret, instance_id=de.info.instance_id, operation_id=op,
            area="seizures", epoch=epoch, counter=counter, payload={"text": "still here"},
        )  # fmt: skip
        await attacker.db.append(op, "seizures", "message", de.device_id, body, epoch)

    await fr.sync()

    assert kinds(fr) == [("seizures", "message-refused")] * 2
    stale, outsider = (message for _, _, message in refusals(fr))
    assert stale == "message of epoch 1 served while seizures is at epoch 2"
    assert f"{de.device_id!r} is not a member of epoch 2" in outsider
    assert de.device_id not in roster(fr, op, "seizures")
    assert fr.read(op, "seizures") == []


async def test_envelope_moved_to_another_area_is_refused(attacker):
    """A seizure envelope served inside the plan or the stakeholder area is refused there and
    shows only where it was posted."""
    op = attacker.op
    fr, de, brand = await synced(attacker, "fr-customs", "de-customs", "brandx")
    message_id = await de.post(op, "seizures", "seizure", {"record_id": "DE-1"})
    [(seq, _)] = await attacker.db.messages(op, "seizures")
    await attacker.db.copy(op, "seizures", seq, to_area="plan")
    await attacker.db.copy(op, "seizures", seq, to_area="stakeholders")

    await fr.sync()
    await brand.sync()

    assert sorted(kinds(fr)) == [("plan", "message-refused"), ("stakeholders", "message-refused")]
    assert {message for _, _, message in refusals(fr)} == {
        "message for op-stop-v/seizures served in op-stop-v/plan",
        "message for op-stop-v/seizures served in op-stop-v/stakeholders",
    }
    assert kinds(brand) == [("stakeholders", "message-refused")]
    assert "served in op-stop-v/stakeholders" in refusals(brand)[0][2]
    assert [m.message_id for m in fr.read(op)] == [message_id]
    assert brand.read(op) == []


async def test_message_from_an_organisation_that_may_not_post_is_refused(attacker):
    """A French plan message the charter does not allow (only the coordinator posts there) is
    refused by a client that has just restarted and has not yet read a commit."""
    op = attacker.op
    fr, _ = await synced(attacker, "fr-customs", "de-customs")
    secret = fr.store.secret(op, "plan", 1)
    assert secret is not None
    body = forge_envelope(
        fr.identity, secret, instance_id=fr.info.instance_id, operation_id=op, area="plan",
        epoch=1, counter=1, payload={"text": "Revised Operational Plan"},
    )  # fmt: skip
    await attacker.db.append(op, "plan", "message", fr.device_id, body, 1)

    de = await attacker.victim("de-customs")
    await de.sync()

    [(area, kind, message)] = refusals(de)
    assert (area, kind) == ("plan", "message-refused")
    assert "may not post in area 'plan'" in message
    assert de.read(op) == []


# -- attachments ---------------------------------------------------------------------------
async def test_swapped_or_tampered_attachment_is_refused_before_decryption(attacker, tmp_path):
    """A blob swapped for another, or altered by one byte, fails the signed ciphertext hash:
    the download is refused and reported, and no plaintext is written."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    photos = []
    for name in ("container.jpg", "seals.jpg"):  # same size, so either blob can stand in
        (tmp_path / name).write_bytes(os.urandom(20_000))
        photos.append(await fr.upload(op, "seizures", tmp_path / name))
    await fr.post(
        op, "seizures", "seizure", {"record_id": "FR-7", "photos": [p.to_json() for p in photos]}
    )
    genuine = await attacker.db.blob(photos[1].blob_id)
    await attacker.db.overwrite_blob(photos[0].blob_id, genuine)  # swapped
    await attacker.db.overwrite_blob(photos[1].blob_id, genuine[:-1] + bytes([genuine[-1] ^ 1]))

    await de.sync()

    [message] = de.read(op, "seizures")
    for n, reference in enumerate(message.json()["photos"]):
        photo = Attachment.from_json(reference)
        dest = tmp_path / f"downloaded-{n}.jpg"
        with pytest.raises(AttachmentRefused, match="ciphertext SHA-256 differs from its metadata"):
            await de.download(photo.meta, photo.blob_id, dest)
        assert not dest.exists()
    assert kinds(de) == [("", "attachment-refused")] * 2


# -- history -------------------------------------------------------------------------------
async def test_rolled_back_commit_is_refused(attacker):
    """When the server forgets a rotation and serves the previous commit again, members who
    saw the newer epoch refuse that commit and the messages of the rolled-back epoch."""
    op, wco = attacker.op, attacker.onboarded.clients["wco"]
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    await wco.sync()
    before = state(wco, op, "seizures")
    rotation, _, _ = create_commit(before, await wco.charter(op), wco.identity, now=wco.now())
    await wco.api.post_commit(op, "seizures", rotation.to_bytes())
    await fr.sync()
    assert state(fr, op, "seizures").epoch == 2
    [admission] = [e for e in await attacker.db.entries(op, "seizures", "commit") if e.epoch == 1]
    await attacker.db.roll_back(before)
    await attacker.db.copy(op, "seizures", admission.seq)
    await de.post(op, "seizures", "seizure", {"record_id": "DE-1"})  # de never saw epoch 2

    await fr.sync()
    await wco.sync()

    for member in (fr, wco):
        assert kinds(member) == [("seizures", "commit-refused"), ("seizures", "message-refused")]
        assert "expected epoch 3" in refusals(member)[0][2]
        assert state(member, op, "seizures").epoch == 2
        assert member.read(op, "seizures") == []


async def test_rewritten_audit_log_is_refused(attacker):
    """An audit log whose history the server rewrote and re-signed fails verification against
    the remembered checkpoint, and keeps failing."""
    wco = attacker.onboarded.clients["wco"]
    first = await wco.verify_audit()
    keep = first.size // 2
    forged = [{"event": "login", "device": "wco-device"}] * (first.size - keep + 3)
    size = await attacker.db.rewrite_audit(keep, forged)
    assert size > first.size

    for _ in range(2):
        with pytest.raises(AuditError, match="history was rewritten"):
            await wco.verify_audit()


# -- answers that are not the API's --------------------------------------------------------
async def test_a_malformed_sync_page_is_a_typed_error_and_changes_nothing(attacker):
    """A sync page without its cursor, or with an entry of the wrong shape, raises
    MalformedAnswerError; the victim stores nothing of it and syncs once the server is honest."""
    de = await attacker.victim("de-customs")
    cursor, position = de.store.get("sync-cursor"), de.store.position(attacker.op, "seizures")
    attacker.proxy.rewrite(r"/api/v1/sync", lambda page: {**page, "cursor": None})
    with pytest.raises(MalformedAnswerError, match="cursor"):
        await de.sync()
    attacker.proxy.rewrites.clear()
    attacker.proxy.on_sync(lambda entry: {**entry, "seq": str(entry["seq"])})
    with pytest.raises(MalformedAnswerError, match=r"events\[0\]"):
        await de.sync()
    assert de.store.get("sync-cursor") == cursor
    assert de.store.position(attacker.op, "seizures") == position
    assert not de.warnings()
    attacker.proxy.rewrites.clear()
    assert (await de.sync()).entries > 0
