"""The TypeScript verifying client core against the real server (design §17): a device made
in TypeScript enrols by request (the Python focal point certifies it), joins, is admitted by
the Python coordinator, reads and downloads the plan, acknowledges it, posts a message and a
seizure with a photo that Python members read verified, follows the stream with resume, and
shows a warning and no content for what a rewriting proxy tampered."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from typing import Any

import pytest

from opseal.client import content
from opseal.client.enrolment import certify_request, encode_response, read_request
from opseal.client.invitation import Invitation
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.envelope import Envelope

from ..client.conftest import PASSPHRASE
from ..client.malicious import RewritingProxy
from .conftest import NodeError

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OP = "op-stop-v"
RECORD = {
    "record_id": "FR-WEB-1",
    "case_ref": "C-WEB-1",
    "reporting_country": "FR",
    "seizure_date": "2026-05-14",
    "transport_mode": "express",
    "ecommerce": True,
    "goods": [{"category": "medicines", "quantity_items": 12}],
}


async def enrolled_device(onboarded, server, node) -> dict[str, Any]:
    """A French officer's device made in TypeScript, certified by the Python focal point and
    logged in."""
    wco, fr = onboarded.clients["wco"], onboarded.clients["fr-customs"]
    made = await node(
        "create", server=server.url, org="fr-customs", user="fr-officer-2", device="fr-browser",
        passphrase=PASSPHRASE,
    )  # fmt: skip
    request = read_request(made["requestText"])  # the focal point verifies the request file
    root = onboarded.roots["fr-customs"]
    cert = await certify_request(fr.api, "fr-customs", root, request, made["fingerprint"])
    info = await node(
        "complete", response=encode_response(cert), passphrase=PASSPHRASE, logKey=wco.info.log_key
    )
    await node("open", passphrase=PASSPHRASE)
    await node("login")
    return info


def invitation(onboarded, server) -> str:
    """The coordinator's invitation block to the operation."""
    coordinator = onboarded.roots["wco"].verify_key
    instance = onboarded.clients["wco"].info.instance_id
    return Invitation(
        OP, "STOP V", "Operation STOP V", "wco", server.url, instance, coordinator
    ).block()


async def browser_device(onboarded, server, node) -> dict[str, Any]:
    """The TypeScript device enrolled, joined to the operation and admitted by the
    coordinator."""
    info = await enrolled_device(onboarded, server, node)
    wco, coordinator = onboarded.clients["wco"], onboarded.roots["wco"].verify_key
    block = invitation(onboarded, server)
    areas = await node("join", invitation=block, fingerprint=coordinator.fingerprint)
    assert areas == ["plan", "seizures", "stakeholders"]  # what a customs role reads
    assert "fr-browser" in await wco.admit()
    return info


async def publish_plan(onboarded, tmp_path) -> tuple[str, bytes]:
    """The coordinator publishes the Operational Plan PDF, acknowledgement required."""
    wco = onboarded.clients["wco"]
    pdf = tmp_path / "OperationalPlan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n")
    attachment = await wco.upload(OP, "plan", pdf, "application/pdf")
    document = content.document("Operational Plan", [attachment])
    plan_id = await wco.post(OP, "plan", "document", document, requires_ack=True)
    return plan_id, pdf.read_bytes()


def messages(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "message"]


async def test_a_typescript_device_enrols_reads_acknowledges_and_posts(
    onboarded, server, node, tmp_path
):
    """A TypeScript device made by request reads the plan (history shared with a newcomer),
    downloads its PDF with the hashes checked, acknowledges it, and posts a message and a
    seizure with a photo that a Python member reads verified."""
    plan_id, pdf = await publish_plan(onboarded, tmp_path)
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    await fr.post(OP, "seizures", "text", content.text("before you joined"))
    info = await browser_device(onboarded, server, node)
    assert info["instanceId"] == onboarded.clients["wco"].info.instance_id

    report = await node("sync")
    # both earlier messages were held on arrival; the plan's was opened when the admitting
    # commit brought the shared area's history
    assert (report["refused"], report["held"]) == (0, 2)
    [operation] = await node("operations")
    assert (operation["operationId"], operation["role"], operation["pinned"]) == (
        OP,
        "customs",
        True,
    )
    rights = {a["area"]: (a["member"], a["mayPost"]) for a in operation["areas"]}
    assert rights == {
        "plan": (True, False),
        "seizures": (True, True),
        "stakeholders": (True, False),
    }
    # a since-join area shares no history: what was posted before is held, never shown
    [held] = await node("read", op=OP, area="seizures")
    assert held["kind"] == "held"
    assert "before you joined" not in str(held)
    [plan] = messages(await node("read", op=OP, area="plan"))
    assert (plan["messageId"], plan["sender"], plan["requiresAck"]) == (plan_id, "wco-device", True)
    assert plan["content"]["title"] == "Operational Plan"
    downloaded = await node("download", ref=plan["content"]["attachments"][0])
    assert downloaded["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert (downloaded["fileName"], downloaded["mediaType"]) == (
        "OperationalPlan.pdf",
        "application/pdf",
    )

    await node("acknowledge", messageId=plan_id)
    wco = onboarded.clients["wco"]
    await wco.sync()
    status = await wco.acks(plan_id)
    [france] = [o for o in status["organisations"] if o["org_id"] == "fr-customs"]
    assert france["acked"] == ["fr-browser"]
    assert not status["unverified"]

    text_id = await node("post", op=OP, area="seizures", text="Parcel held at CDG hub")
    photo = os.urandom(70_000)
    record_id = await node(
        "postSeizure", op=OP, record=RECORD,
        photo={"data": b64e(photo), "fileName": "parcel.jpg", "mediaType": "image/jpeg"},
    )  # fmt: skip
    de = onboarded.clients["de-customs"]
    await de.sync()
    read = {m.message_id: m for m in de.read(OP, "seizures")}
    assert read[text_id].json() == {"text": "Parcel held at CDG hub"}
    assert (read[text_id].sender, read[text_id].org) == ("fr-browser", "fr-customs")
    seizure = read[record_id].json()
    assert content.seizure(seizure)["record_id"] == "FR-WEB-1"  # valid against the schema
    assert record_id == str(content.record_message_id(OP, "fr-customs", seizure))
    [attachment] = content.attachments_of(seizure)
    saved = await de.download(attachment.meta, attachment.blob_id, tmp_path / "photo.jpg")
    assert saved.read_bytes() == photo
    assert not de.warnings()
    assert await node("warnings") == []


async def test_the_stream_delivers_verified_entries_and_resumes_from_its_cursor(
    onboarded, server, node
):
    """Entries posted while the TypeScript device follows the stream arrive verified; after
    the stream is closed, what was posted meanwhile arrives on resuming, and nothing twice."""
    await browser_device(onboarded, server, node)
    await node("sync")
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    await node("streamStart")
    first = await fr.post(OP, "seizures", "text", content.text("first"))
    seen = await node("streamWait", count=1)
    assert [e["messageId"] for e in seen["entries"]] == [first]
    await node("streamClose")

    second = await fr.post(OP, "seizures", "text", content.text("second"))
    await node("streamStart")
    seen = await node("streamWait", count=1)
    await fr.post(OP, "seizures", "text", content.text("third"))
    seen = await node("streamWait", count=2)
    await node("streamClose")
    assert [e["messageId"] for e in seen["entries"]][:1] == [second]
    assert all(e["refused"] == 0 for e in seen["entries"])
    texts = [m["content"]["text"] for m in messages(await node("read", op=OP, area="seizures"))]
    assert texts == ["first", "second", "third"]


async def test_an_alert_is_read_and_answered_verified(onboarded, server, node):
    """The coordinator's alert to French Customs reaches the TypeScript device verified; its
    response reaches the coordinator verified; an alert to others cannot be answered."""
    await browser_device(onboarded, server, node)
    await node("sync")
    wco = onboarded.clients["wco"]
    await wco.sync()
    mine = await wco.alert(
        OP, "seizures", ["fr-customs"], "Inspect parcels from sender X", "2026-06-01"
    )
    theirs = await wco.alert(OP, "seizures", ["de-customs"], "Check the Hamburg hub")
    await node("sync")
    alerts = {a["message"]["messageId"]: a for a in await node("alerts", op=OP, area="seizures")}
    assert alerts[mine]["addressedToMe"]
    assert (alerts[mine]["action"], alerts[mine]["deadline"]) == (
        "Inspect parcels from sender X",
        "2026-06-01",
    )
    assert not alerts[theirs]["addressedToMe"]
    answer = await node("respond", op=OP, area="seizures", alertId=mine, outcome="3 parcels held")
    with pytest.raises(NodeError, match="addressed to de-customs"):
        await node("respond", op=OP, area="seizures", alertId=theirs, outcome="none")
    await wco.sync()
    [response] = wco.responses(mine)
    assert (response.message_id, response.sender) == (answer, "fr-browser")
    assert response.json() == {"alert_id": mine, "outcome": "3 parcels held"}
    await node("sync")
    [alert] = [
        a for a in await node("alerts", op=OP, area="seizures") if a["message"]["messageId"] == mine
    ]
    assert [r["messageId"] for r in alert["responses"]] == [answer]


def tamper(kind: str, body: str) -> str:
    """The envelope with its signature, epoch or sender changed."""
    envelope = Envelope.from_bytes(b64d(body))
    if kind == "signature":
        signature = bytes([envelope.signature[0] ^ 1]) + envelope.signature[1:]
        return b64e(replace(envelope, signature=signature).to_bytes())
    header = envelope.header
    if kind == "epoch":
        header = replace(header, epoch=header.epoch + 1)
    else:
        header = replace(header, sender="wco-device")
    return b64e(replace(envelope, header=header).to_bytes())


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("signature", "message signature does not verify"),
        ("epoch", "served while seizures is at epoch"),
        ("sender", "message signature does not verify"),  # wco-device's key did not sign it
    ],
)
async def test_a_tampered_message_shows_a_warning_and_no_content(
    onboarded, server, node, kind, reason
):
    """A rewriting proxy changes one message's signature, epoch or sender: the TypeScript
    device shows a warning with the reason and not the message; an untouched one shows."""
    await browser_device(onboarded, server, node)
    await node("sync")
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    tampered = await fr.post(OP, "seizures", "text", content.text("secret plan B"))
    honest = await fr.post(OP, "seizures", "text", content.text("all clear"))
    proxy = RewritingProxy(server.url)

    def rewrite(entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("message_id") == tampered and entry["kind"] == "message":
            return {**entry, "body": tamper(kind, entry["body"])}
        return entry

    proxy.on_sync(rewrite)
    await proxy.start()
    try:
        await node("open", passphrase=PASSPHRASE, server=proxy.url)
        await node("login")
        report = await node("sync")
    finally:
        await proxy.close()
    entries = await node("read", op=OP, area="seizures")
    assert report["refused"] == 1
    assert [m["messageId"] for m in messages(entries)] == [honest]
    [warning] = [e for e in entries if e["kind"] == "warning"]
    assert warning["warning"] == "message-refused"
    assert reason in warning["reason"]
    assert warning["seq"] < messages(entries)[0]["seq"]
    assert "secret plan B" not in str(entries)
