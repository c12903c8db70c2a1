"""A server that shows members different histories: forks, frozen epochs and split views of the
audit log are detected (issue 9; design §4 "Forks and freezes", §7).

The checks run in the client, so these tests run on SQLite only.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

from opseal.client import cli
from opseal.client.cli.codes import WARNINGS
from opseal.client.client import Client
from opseal.client.forks import FREEZE_GRACE, FREEZE_REPEAT
from opseal.crypto.charter import DEFAULT_ROTATION_PERIOD
from opseal.crypto.group import create_commit, epoch_authenticator
from opseal.crypto.keys import SigningKey
from opseal.crypto.statements import Receipt, ReceiptGossip

from .conftest import PASSPHRASE
from .malicious import Attacker, attacker  # noqa: F401 (fixture)
from .test_malicious import kinds, refusals, state, synced

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def authenticator(client: Client, op: str, area: str) -> bytes:
    latest = state(client, op, area)
    secret = client.store.secret(op, area, latest.epoch)
    assert secret is not None
    return epoch_authenticator(secret, latest)


def warned(client: Client, kind: str) -> list[tuple[str, str]]:
    """``(area, message)`` of the client's warnings of ``kind``."""
    return [(area, message) for area, k, message in refusals(client) if k == kind]


async def test_members_served_different_commits_for_one_epoch_both_detect_the_fork(attacker):
    """The server stores two commits for the same epoch and shows one to the French member,
    the other to the German one: each detects the fork at the other's next receipt or message,
    as a fork (not a bare decryption failure), and neither shows the other branch's message.
    A receipt the server forges with another authenticator raises no false alarm."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    before = await fr.post(op, "seizures", "text", {"text": "before the fork"})
    await de.sync()
    forged = Receipt.create(
        SigningKey.generate(), instance_id=fr.info.instance_id, operation_id=op,
        area="seizures", message_id=uuid.UUID(before), kind="read", device_id=de.device_id,
        signed_at=de.now(), sender_device_id=fr.device_id,
        gossip=ReceiptGossip(state(fr, op, "seizures").epoch, bytes(32)),
    )  # fmt: skip
    await attacker.db.append(op, "seizures", "receipt", de.device_id, forged.to_bytes())
    await fr.sync()
    assert kinds(fr) == []
    charter = await fr.charter(op)
    ours, our_state, _ = create_commit(
        state(fr, op, "seizures"), charter, fr.identity, now=fr.now()
    )
    theirs, _, _ = create_commit(state(de, op, "seizures"), charter, de.identity, now=de.now())
    await attacker.db.add_commit(ours, our_state)  # the server's (and the French) branch
    attacker.proxy.on_commits(lambda c: theirs if c.hash == ours.hash else c)
    de = await attacker.victim("de-customs")  # the German member sees the other branch

    await fr.sync()
    await de.sync()
    assert state(fr, op, "seizures").epoch == state(de, op, "seizures").epoch == ours.epoch
    assert authenticator(fr, op, "seizures") != authenticator(de, op, "seizures")
    assert kinds(fr) == kinds(de) == []

    await de.ack(before)  # the German receipt carries its branch's authenticator
    await fr.sync()
    [(area, message)] = warned(fr, "fork")
    assert area == "seizures"
    assert f"epoch {ours.epoch}" in message
    assert "receipt" in message

    after = await fr.post(op, "seizures", "text", {"text": "on the French branch"})
    await de.sync()
    [(area, message)] = warned(de, "fork")
    assert area == "seizures"
    assert f"epoch {ours.epoch}" in message
    assert "fr-customs" in message
    assert after not in {m.message_id for m in de.read(op, "seizures")}
    assert ("seizures", "message-refused") not in kinds(de)

    await de.post(op, "seizures", "text", {"text": "on the German branch"})
    await fr.sync()
    assert [k for a, k in kinds(fr) if a == "seizures"] == ["fork", "fork"]


async def test_a_receipt_withheld_then_served_late_still_reveals_the_fork(attacker):
    """The server hides the German receipt that would reveal the fork, lets a later entry
    through (a gap), then serves the receipt: the refilled receipt is checked like any other,
    so the French member records the fork and the gap closes."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    before = await fr.post(op, "seizures", "text", {"text": "before the fork"})
    await de.sync()
    charter = await fr.charter(op)
    ours, our_state, _ = create_commit(
        state(fr, op, "seizures"), charter, fr.identity, now=fr.now()
    )
    theirs, _, _ = create_commit(state(de, op, "seizures"), charter, de.identity, now=de.now())
    await attacker.db.add_commit(ours, our_state)
    attacker.proxy.on_commits(lambda c: theirs if c.hash == ours.hash else c)
    de = await attacker.victim("de-customs")
    await fr.sync()
    await de.sync()
    fr = await attacker.victim("fr-customs")  # on its branch already; now behind the proxy
    attacker.proxy.rewrites.clear()

    await de.ack(before)  # the receipt that would show the fork
    receipt_seq = (await attacker.db.entries(op, "seizures", "receipt"))[-1].seq
    attacker.proxy.rewrite(
        r"/api/v1/(sync|operations/.*/events)",
        lambda page: {**page, "events": [e for e in page["events"] if e["seq"] != receipt_seq]},
    )
    wco = attacker.onboarded.clients["wco"]
    await wco.sync()
    await wco.post(op, "seizures", "text", {"text": "after the receipt"})  # makes the gap
    await fr.sync()
    assert warned(fr, "fork") == []
    assert ("seizures", "gap") in kinds(fr)

    attacker.proxy.rewrites.clear()  # the receipt is served late
    await fr.sync()
    [(area, message)] = warned(fr, "fork")
    assert area == "seizures"
    assert "receipt" in message
    assert fr.gaps(op, "seizures") == {}


async def set_rotation_period(attacker: Attacker, area: str, seconds: int) -> None:
    """The coordinator publishes the next charter version with ``area``'s rotation period set,
    and every member verifies it."""
    op, clients = attacker.op, attacker.onboarded.clients
    wco = clients["wco"]
    charter = await wco.charter(op, refresh=True)
    areas = [replace(a, rotation_period_s=seconds) if a.name == area else a
             for a in charter.areas]  # fmt: skip
    draft = charter.next_version(issued_at=wco.now() - 1, areas=areas)
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    await wco.api.publish_charter(op, draft.signed(user_key, wco.identity.user_cert).to_bytes())
    for client in clients.values():
        await client.charter(op, refresh=True)


async def test_member_frozen_on_an_old_epoch_warns_past_the_rotation_period(attacker, monkeypatch):
    """The charter rotates 'seizures' every two hours and the server withholds its next epoch
    from the French member: once that period (plus grace) has passed on its clock, the French
    member warns epoch-frozen for 'seizures' only (the other areas rotate daily), again after
    an hour, while the German member, served the rotation, warns nothing; a day later every
    area is frozen and `opseal sync` exits 4; once the operation has ended, nothing warns."""
    op = attacker.op
    wco, fr, de = await synced(attacker, "wco", "fr-customs", "de-customs")
    await set_rotation_period(attacker, "seizures", 7200)
    late = int(time.time()) + 7200 + FREEZE_GRACE + 60
    clock = {"now": late}
    for client in (wco, fr, de):
        monkeypatch.setattr(client, "now", lambda: clock["now"])
    commit, new_state, _ = create_commit(
        state(wco, op, "seizures"), await wco.charter(op), wco.identity, now=late
    )
    seq = await attacker.db.add_commit(commit, new_state)

    def withhold(page: dict[str, Any]) -> dict[str, Any]:
        kept = [e for e in page["events"] if (e["area"], e["seq"] >= seq) != ("seizures", True)]
        return {**page, "events": kept}

    attacker.proxy.rewrite(r"/api/v1/sync", withhold)
    fr = await attacker.victim("fr-customs")
    monkeypatch.setattr(fr, "now", lambda: clock["now"])

    await fr.sync()
    await de.sync()
    assert state(fr, op, "seizures").epoch == commit.epoch - 1
    [(area, message)] = warned(fr, "epoch-frozen")
    assert area == "seizures"
    assert f"(epoch {commit.epoch - 1})" in message
    assert "rotation period of 7200 s" in message
    assert warned(de, "epoch-frozen") == []
    await fr.sync()
    assert len(warned(fr, "epoch-frozen")) == 1  # not repeated within the hour
    clock["now"] += FREEZE_REPEAT
    await fr.sync()
    assert len(warned(fr, "epoch-frozen")) == 2

    clock["now"] = int(time.time()) + DEFAULT_ROTATION_PERIOD + FREEZE_GRACE + 60
    monkeypatch.setattr(Client, "now", lambda self: clock["now"])
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    home = str(attacker.onboarded.home)
    argv = ["--home", home, "--profile", fr.device_id, "--json", "sync"]
    assert await asyncio.to_thread(cli.main, argv) == WARNINGS
    assert {a for a, _ in warned(fr, "epoch-frozen")} == {"plan", "seizures", "stakeholders"}
    clock["now"] = (await fr.charter(op)).ends_at + 1  # no rotation is due once it has ended
    await fr.sync()
    assert len(warned(fr, "epoch-frozen")) == 5


async def test_inconsistent_checkpoints_are_detected_through_receipt_gossip(attacker):
    """The server shows the French member one audit log and, after rewriting its history, the
    German member another: each one's signed receipts carry its verified checkpoint, and the
    other member's next sync reports a split view; consistent checkpoints report nothing."""
    op = attacker.op
    fr, de = await synced(attacker, "fr-customs", "de-customs")
    message = await fr.post(op, "seizures", "text", {"text": "please acknowledge"})
    first = await fr.verify_audit()
    await de.sync()
    await de.verify_audit()  # the same log so far: the receipt proves consistency
    await de.ack(message, "read")
    await fr.sync()
    assert warned(fr, "split-view") == []

    keep = first.size // 2
    await attacker.db.rewrite_audit(keep, [{"event": "login", "device": "x"}] * first.size)
    de.store.put("audit-checkpoint", b"")  # as a device that never verified the log before
    await de.verify_audit()
    await de.ack(message)
    await fr.ack(message)
    await fr.sync()
    await de.sync()

    [(area, text)] = warned(fr, "split-view")
    assert area == "seizures"
    assert "de-customs-device" in text
    [(area, text)] = warned(de, "split-view")
    assert area == "seizures"
    assert "fr-customs-device" in text
