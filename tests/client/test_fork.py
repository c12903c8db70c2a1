"""A server that shows members different histories: forks, frozen epochs and split views of the
audit log are detected (issue 9; design §4 "Forks and freezes", §7).

The checks run in the client, so these tests run on SQLite only.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from opseal.client import cli
from opseal.client.cli.codes import WARNINGS
from opseal.client.client import Client
from opseal.client.forks import DEFAULT_ROTATION_PERIOD, FREEZE_GRACE, FREEZE_REPEAT
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
        signed_at=de.now(), gossip=ReceiptGossip(state(fr, op, "seizures").epoch, bytes(32)),
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


async def test_member_frozen_on_an_old_epoch_warns_past_the_rotation_period(attacker, monkeypatch):
    """The server withholds a new epoch of 'seizures' from the French member: once the rotation
    period (plus grace) has passed on its clock, it warns epoch-frozen for that area, again
    after an hour, while the German member, served the rotation, does not."""
    op = attacker.op
    wco, fr, de = await synced(attacker, "wco", "fr-customs", "de-customs")
    assert warned(fr, "epoch-frozen") == []
    late = int(time.time()) + DEFAULT_ROTATION_PERIOD + FREEZE_GRACE + 60
    clock = {"now": late}
    for client in (wco, fr, de):
        monkeypatch.setattr(client, "now", lambda: clock["now"])
    charter = await wco.charter(op)
    commit, new_state, _ = create_commit(
        state(wco, op, "seizures"), charter, wco.identity, now=late
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
    frozen = dict(warned(fr, "epoch-frozen"))
    assert set(frozen) == {"plan", "seizures", "stakeholders"}  # nobody rotated the others
    assert {a for a, _ in warned(de, "epoch-frozen")} == {"plan", "stakeholders"}
    assert f"(epoch {commit.epoch - 1})" in frozen["seizures"]
    assert "rotation period of 86400 s" in frozen["seizures"]
    await fr.sync()
    assert len(warned(fr, "epoch-frozen")) == 3  # not repeated within the hour
    clock["now"] += FREEZE_REPEAT
    await fr.sync()
    assert len(warned(fr, "epoch-frozen")) == 6

    clock["now"] += FREEZE_REPEAT  # `opseal sync` exits 4 on the warning, as on any other
    monkeypatch.setattr(Client, "now", lambda self: clock["now"])
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    home = str(attacker.onboarded.home)
    argv = ["--home", home, "--profile", fr.device_id, "--json", "sync"]
    assert await asyncio.to_thread(cli.main, argv) == WARNINGS


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
