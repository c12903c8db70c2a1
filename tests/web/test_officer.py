"""The officer's path in Debian's Chromium against the real server (issue 14, "Done when"):
the coordinator publishes the plan with the CLI; an officer enrols this browser by request,
reads and downloads the plan and acknowledges it, which the coordinator's `opseal acks`
shows; the officer posts a seizure with a photo that a CLI member reads verified; the
stream brings new messages and the coordinator's alert, which the officer answers; and what
a rewriting proxy tampered shows as a warning with no content. The stakeholder's view, the
lock and "forget this device" are in test_device.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import pytest
import structlog

from opseal.client import cli, content
from opseal.client.enrolment import certify_request, encode_response, read_request
from opseal.client.invitation import Invitation

from ..client.conftest import FAST, PASSPHRASE
from ..client.malicious import RewritingProxy
from .test_core import tamper

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

OP = "op-stop-v"
BROWSER_PASSPHRASE = "a long browser passphrase"


@pytest.fixture
def opseal(onboarded, capsys, monkeypatch):
    """``opseal --json`` in-process on the onboarded profiles (a worker thread, so the test's
    loop keeps serving)."""
    monkeypatch.setattr(cli, "KDF_PARAMS", FAST)
    monkeypatch.setenv("OPSEAL_PASSPHRASE", PASSPHRASE)

    async def run(org: str, *argv: str) -> Any:
        capsys.readouterr()
        args = ["--home", str(onboarded.home), "--profile", f"{org}-device", "--json", *argv]
        with structlog.testing.capture_logs():
            code = await asyncio.to_thread(cli.main, args)
        out = capsys.readouterr().out
        assert code == 0, out
        return json.loads(out)

    return run


async def enrol(browser, onboarded, url: str, org: str, user: str, area: str) -> None:
    """This browser makes its keys and a request; the focal point certifies it; the browser
    joins the operation by its invitation and the coordinator admits it."""
    await browser.open(url + "/")
    fields = {"Organisation": org, "User": user, "Device name": f"{user}-web",
              "Passphrase": BROWSER_PASSPHRASE, "Passphrase again": BROWSER_PASSPHRASE}  # fmt: skip
    for label, value in fields.items():
        await browser.fill(label, value)
    await browser.click("Create enrolment request")
    await browser.wait_text("Fingerprint to read out")
    request = read_request(await browser("value", label="Enrolment request"))
    fingerprint = await browser.text("Fingerprint")
    focal = onboarded.clients[org]
    cert = await certify_request(focal.api, org, onboarded.roots[org], request, fingerprint)
    await browser.fill("Focal point's answer", encode_response(cert))
    await browser.fill("Passphrase", BROWSER_PASSPHRASE)
    await browser.click("Complete enrolment")
    await browser.wait_text("Join an operation")
    wco = onboarded.clients["wco"]
    root = onboarded.roots["wco"].verify_key
    invitation = Invitation(OP, "STOP V", "Operation STOP V", "wco", wco.info.server,
                            wco.info.instance_id, root).block()  # fmt: skip
    await browser.fill("Invitation", invitation)
    await browser.fill("Coordinator fingerprint", root.fingerprint)
    await browser.click("Join")
    await browser.wait_text("Asked to join")
    assert f"{user}-web" in await wco.admit()
    await browser.click("Sync")
    await browser("waitRole", role="button", name=area)  # admitted: the area opens


async def test_the_officer_reads_acknowledges_and_posts_in_the_browser(
    onboarded, server, browser, opseal, tmp_path
):
    """The whole path, every request to the app's own origin and no policy violation."""
    pdf = tmp_path / "OperationalPlan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(50_000) + b"\n%%EOF\n")
    posted = await opseal("wco", "attach", OP, "plan", str(pdf), "--title", "Operational Plan",
                          "--requires-ack")  # fmt: skip
    plan_id = posted["message_id"]

    await enrol(browser, onboarded, server.url, "fr-customs", "fr-officer-2", "plan")
    await browser.click("plan")
    await browser.wait_text("Operational Plan")
    saved = await browser(
        "download", name="Download OperationalPlan.pdf", path=str(tmp_path / "dl.pdf")
    )
    assert saved == {"fileName": "OperationalPlan.pdf",
                     "sha256": hashlib.sha256(pdf.read_bytes()).hexdigest()}  # fmt: skip
    await browser.click("Acknowledge")
    await browser.wait_text("^Acknowledged")
    acks = await opseal("wco", "acks", plan_id)
    [france] = [o for o in acks["organisations"] if o["org_id"] == "fr-customs"]
    assert "fr-officer-2-web" in france["acked"]

    await browser.click("Operations")
    await browser.click("seizures")
    await browser.wait_text("Post a seizure")
    photo = tmp_path / "parcel.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(60_000))
    for label, value in [("Record id", "FR-WEB-1"), ("Case reference", "C-WEB-1"),
                         ("Reporting country", "FR"), ("Seizure date", "2026-05-14"),
                         ("Quantity (items)", "12")]:  # fmt: skip
        await browser.fill(label, value)
    await browser("setFile", label="Photo", path=str(photo))
    await browser.click("Post seizure")
    await browser.wait_text("^Seizure FR-WEB-1 posted")

    read = await opseal("de-customs", "read", OP, "seizures")
    [record] = [m for m in read["messages"] if m["content_type"] == "seizure"]
    assert (record["sender"], record["org"]) == ("fr-officer-2-web", "fr-customs")
    assert record["content"]["record_id"] == "FR-WEB-1"
    de = onboarded.clients["de-customs"]
    await de.sync()
    [stored] = [m for m in de.read(OP, "seizures") if m.message_id == record["message_id"]]
    [attachment] = content.attachments_of(stored.json())
    got = await de.download(attachment.meta, attachment.blob_id, tmp_path / "photo.jpg")
    assert got.read_bytes() == photo.read_bytes()

    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    await fr.post(OP, "seizures", "text", content.text("Second parcel held at CDG"))
    await browser.wait_text("Second parcel held at CDG")  # by the stream: no click

    alert = await opseal("wco", "alert", OP, "seizures", "--to", "fr-customs", "--action",
                         "Inspect parcel CN123", "--deadline", "2026-05-20")  # fmt: skip
    await browser.wait_text("^Alert to fr-customs: Inspect parcel CN123 \\(by 2026-05-20\\)")
    await browser.fill("Outcome", "Parcel inspected: 40 watches seized")
    await browser.click("Respond")
    await browser.wait_text("^fr-customs: Parcel inspected: 40 watches seized")
    read = await opseal("wco", "read", OP, "seizures")
    [response] = [m for m in read["messages"] if m["content_type"] == "alert-response"]
    assert response["content"] == {"alert_id": alert["message_id"],
                                    "outcome": "Parcel inspected: 40 watches seized"}  # fmt: skip
    assert response["sender"] == "fr-officer-2-web"
    assert await browser.foreign_requests(server.url) == []
    assert await browser("problems") == []

    secrets = ["Operational Plan", "FR-WEB-1", "Second parcel held at CDG", "Parcel inspected",
               "OperationalPlan.pdf", BROWSER_PASSPHRASE]  # fmt: skip
    stored = await browser("storage", texts=[*secrets, "fr-officer-2-web", "keyfile"])
    assert "device" in stored["keys"]
    assert len(stored["keys"]) > 20
    # sealed: not even the device's own name in the clear; only the key file's public head
    assert stored["found"] == ["keyfile"]


async def test_tampered_messages_show_a_warning_and_no_content(onboarded, server, browser):
    """Through a rewriting proxy (the app and the API both), messages whose signature, epoch
    or sender were changed show as integrity warnings with no content; the untouched one
    shows."""
    proxy = RewritingProxy(server.url)
    await proxy.start()
    try:
        await enrol(browser, onboarded, proxy.url, "fr-customs", "fr-officer-3", "seizures")
        fr = onboarded.clients["fr-customs"]
        await fr.sync()
        kinds = ("signature", "epoch", "sender")
        ids = {await fr.post(OP, "seizures", "text", content.text(f"secret {k}")): k for k in kinds}
        await fr.post(OP, "seizures", "text", content.text("all clear"))

        def rewrite(entry: dict[str, Any]) -> dict[str, Any]:
            kind = ids.get(entry.get("message_id", ""))
            return {**entry, "body": tamper(kind, entry["body"])} if kind else entry

        proxy.on_sync(rewrite)
        await browser("goto", url=f"{proxy.url}/#/{OP}/seizures")
        await browser.wait_text("all clear")
        page = await browser.text()
    finally:
        await proxy.close()
    assert page.count("Integrity warning") == 3
    assert "message signature does not verify" in page
    assert not [k for k in kinds if f"secret {k}" in page]
