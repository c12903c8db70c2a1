"""Acknowledgements the client verifies itself (issue 12), against the real server and a proxy."""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from opseal.client import cli, content
from opseal.client.client import Client
from opseal.client.errors import ClientError
from opseal.crypto.encoding import b64e
from opseal.crypto.keys import SigningKey
from opseal.crypto.statements import Receipt

from .conftest import FAST, PASSPHRASE
from .malicious import Attacker, attacker  # noqa: F401 (fixture)

RECEIPTS = r"/api/v1/operations/[^/]+/areas/[^/]+/messages/[^/]+/receipts"


async def _plan_acked_by_france(attacker: Attacker) -> str:
    wco, fr = attacker.onboarded.clients["wco"], attacker.onboarded.clients["fr-customs"]
    message_id = await wco.post(attacker.op, "plan", "text", {"text": "plan"}, requires_ack=True)
    await fr.sync()
    await fr.ack(message_id)
    await wco.sync()
    return message_id


def _claim_acked(org: str, device: str):
    """A rewrite making the server's summary say ``org``'s ``device`` acknowledged."""

    def rewrite(status: dict[str, Any]) -> dict[str, Any]:
        for entry in status["organisations"]:
            if entry["org_id"] == org:
                entry["acked"] = sorted({*entry["acked"], device})
                entry["read"] = sorted({*entry["read"], device})
        status["pending_ack_orgs"] = [o for o in status["pending_ack_orgs"] if o != org]
        return status

    return rewrite


async def test_honest_server_acks_verify_without_warnings(attacker: Attacker):
    """Through an honest server the verified status shows France's acknowledgement, Germany
    still to acknowledge, and no warning."""
    message_id = await _plan_acked_by_france(attacker)
    wco = attacker.onboarded.clients["wco"]

    status = await wco.acks(message_id)

    fr = next(o for o in status["organisations"] if o["org_id"] == "fr-customs")
    assert fr["acked"] == ["fr-customs-device"]
    assert status["pending_ack_orgs"] == ["de-customs"]
    assert status["unverified"] == []
    assert status["verified_receipts"] == 1
    assert not [w for w in wco.warnings() if w[4] == "acks-unverified"]


async def test_proxy_adding_an_acknowledging_organisation_makes_acks_warn(
    attacker: Attacker, capsys, monkeypatch
):
    """A proxy that adds Germany to the acknowledged organisations does not change the
    computed status, and `opseal acks` warns and exits with the integrity code."""
    message_id = await _plan_acked_by_france(attacker)
    attacker.proxy.rewrite(RECEIPTS, _claim_acked("de-customs", "de-customs-device"))
    wco = await attacker.victim("wco")
    await asyncio.to_thread(wco.profile.save_info, wco.info)  # the CLI goes through the proxy too

    status = await wco.acks(message_id)

    de = next(o for o in status["organisations"] if o["org_id"] == "de-customs")
    assert de["acked"] == []
    assert status["pending_ack_orgs"] == ["de-customs"]
    assert any("de-customs acknowledged" in p for p in status["unverified"])
    await wco.close()

    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    home, name = wco.profile.path.parent, wco.profile.name
    capsys.readouterr()
    code = await asyncio.to_thread(
        cli.main, ["--home", str(home), "--profile", name, "acks", message_id]
    )
    out, err = capsys.readouterr()
    assert code == 4, err
    assert "de-customs acknowledged the message" in err
    assert "Still to acknowledge: de-customs" in out
    reopened = await Client.open(wco.profile, PASSPHRASE, login=False)
    attacker.onboarded.clients["wco"] = reopened  # for the fixture to close


async def test_forged_receipt_is_refused_with_a_warning(attacker: Attacker):
    """A receipt statement not signed by its device's roster key does not count and is
    reported."""
    message_id = await _plan_acked_by_france(attacker)
    wco = attacker.onboarded.clients["wco"]
    stored = wco.store.message(message_id)
    forged = Receipt.create(
        SigningKey.generate(), instance_id=wco.info.instance_id, operation_id=stored.op,
        area=stored.area, message_id=uuid.UUID(message_id), kind="ack",
        device_id="de-customs-device", signed_at=wco.now(),
    )  # fmt: skip

    def add_forged(status: dict[str, Any]) -> dict[str, Any]:
        status["receipts"].append(b64e(forged.to_bytes()))
        return _claim_acked("de-customs", "de-customs-device")(status)

    attacker.proxy.rewrite(RECEIPTS, add_forged)
    wco = await attacker.victim("wco")

    status = await wco.acks(message_id)

    assert status["verified_receipts"] == 1
    assert status["pending_ack_orgs"] == ["de-customs"]
    kinds = [w[4] for w in wco.warnings()]
    assert "receipt-refused" in kinds
    assert "acks-unverified" in kinds


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # checked by the client
async def test_a_receipt_relabelled_to_another_senders_message_is_refused(
    attacker: Attacker, capsys, monkeypatch
):
    """German Customs posts under the id of France's message in the same area. An id two
    senders used needs its sender; the coordinator's ack of Germany's message does not count
    for France's; and a proxy serving that receipt (and the claim) for France's message gets
    a `receipt-refused` warning naming the other sender, and `opseal acks` exits 4."""
    fr, de, wco = (attacker.onboarded.clients[o] for o in ("fr-customs", "de-customs", "wco"))
    op, fr_dev, de_dev = attacker.op, "fr-customs-device", "de-customs-device"
    for client in (fr, de, wco, fr):  # key packages, admission, joining
        await client.sync()
    message_id = await fr.post(op, "seizures", "text", content.text("France's"))
    await de.sync()
    de.outbox.enqueue(
        op, "seizures", [("text", content.text("mine"))], message_ids=[uuid.UUID(message_id)]
    )
    await de.flush()
    await wco.sync()
    with pytest.raises(ClientError, match="more than one verified message"):
        await wco.ack(message_id)
    await wco.ack(message_id, sender=de_dev)

    assert (await wco.acks(message_id, sender=fr_dev))["verified_receipts"] == 0
    theirs = await wco.acks(message_id, sender=de_dev)
    assert (theirs["verified_receipts"], theirs["unverified"]) == (1, [])
    relabelled = (await wco.api.receipts(op, "seizures", de_dev, message_id)).receipts

    def serve_theirs(status: dict[str, Any]) -> dict[str, Any]:
        status["receipts"] = relabelled
        return _claim_acked("wco", "wco-device")(status)

    attacker.proxy.rewrite(RECEIPTS, serve_theirs)
    wco = await attacker.victim("wco")
    await asyncio.to_thread(wco.profile.save_info, wco.info)  # the CLI goes through the proxy too

    status = await wco.acks(message_id, sender=fr_dev)

    assert status["verified_receipts"] == 0
    refused = [w[5] for w in wco.warnings() if w[4] == "receipt-refused"]
    assert any(f"names device {de_dev}'s message" in text for text in refused), refused
    assert any("wco acknowledged" in p for p in status["unverified"])
    await wco.close()

    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)
    argv = ["--home", str(wco.profile.path.parent), "--profile", wco.profile.name, "acks"]
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, [*argv, message_id, "--sender", fr_dev])
    assert code == 4, capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, [*argv, message_id]) != 0  # which sender's?
    assert "name the sender" in capsys.readouterr().err
    attacker.onboarded.clients["wco"] = await Client.open(wco.profile, PASSPHRASE, login=False)
