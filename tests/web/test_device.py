"""A stakeholder's browser device (issue 14): it cannot open customs areas, locks itself
after inactivity (the server's web_lock_after, short here), unlocks with its passphrase,
and "forget this device" wipes it."""

from __future__ import annotations

import pytest

from opseal.client import content
from opseal.server.config import Settings

from .test_officer import BROWSER_PASSPHRASE, OP, enrol

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOCK_AFTER = 12


@pytest.fixture
def settings(database_url) -> Settings:
    """The real server, its web app locking after a few idle seconds."""
    return Settings(database_url=database_url, rate_limit_per_minute=100_000,
                    web_lock_after=LOCK_AFTER)  # fmt: skip


async def test_a_stakeholder_sees_its_area_only_locks_and_is_forgotten(onboarded, server, browser):
    """A rights holder lists its own area only and a link to a customs area shows nothing of
    it; idle, the app locks and needs the passphrase; forgotten, the device is gone for good."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    await fr.post(OP, "seizures", "text", content.text("customs only"))
    await enrol(browser, onboarded, server.url, "brandx", "brandx-analyst", "stakeholders")
    assert await browser("count", role="button", name="stakeholders") == 1
    assert await browser("count", role="button", name="seizures") == 0
    assert await browser("count", role="button", name="plan") == 0
    await browser("goto", url=f"{server.url}/#/{OP}/seizures")
    await browser.wait_text("cannot read op-stop-v/seizures")
    assert "customs only" not in await browser.text()

    await browser.wait_text("locked after inactivity", timeout_ms=(LOCK_AFTER + 10) * 1000)
    assert await browser("count", role="button", name="stakeholders") == 0
    await browser.fill("Passphrase", "not the passphrase at all")
    await browser.click("Unlock")
    await browser.wait_text("^Unlocking failed")
    await browser.fill("Passphrase", BROWSER_PASSPHRASE)
    await browser.click("Unlock")
    await browser("waitRole", role="button", name="stakeholders")

    await browser.click("Forget this device")
    await browser.wait_text("This device was forgotten")
    await browser("goto", url=f"{server.url}/")
    await browser.wait_text("Enrol this device")  # nothing left in IndexedDB
    assert await browser.foreign_requests(server.url) == []
