"""The web app in Debian's Chromium against the real server (design §17)."""

from __future__ import annotations

import json
from pathlib import Path

from opseal.crypto.errors import CryptoError
from opseal.crypto.keys import VerifyKey

from .test_serving import directives

EDGES = Path(__file__).resolve().parents[2] / "web" / "test" / "vectors.json"


async def test_the_page_loads_from_its_own_origin_only_under_its_policy(web_server, browser):
    """The page, as Chromium loads it, carries the CSP; it requests nothing from any other
    origin, breaks no policy rule and logs no error, and shows the enrolment form."""
    page = await browser.open(web_server.url + "/")
    assert page["status"] == 200
    csp = directives(page["headers"]["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert page["headers"]["x-content-type-options"] == "nosniff"
    await browser.wait_text("Enrol this device")
    assert await browser.foreign_requests(web_server.url) == []
    urls = {r["url"].removeprefix(web_server.url) for r in await browser("requests")}
    assert "/config.json" in urls
    assert any(u.startswith("/assets/app-") for u in urls)
    assert await browser("problems") == []


async def test_webcrypto_ed25519_gives_pythons_verdict_on_every_edge_case(web_server, browser):
    """The app takes Chromium's WebCrypto Ed25519 verdict as final (design §17): on the edge
    vectors (small-order and mixed-order points, non-canonical encodings, S >= L) it must
    accept exactly what Python's OpenSSL accepts."""
    cases = json.loads(EDGES.read_text(encoding="utf-8"))["ed25519_edges"]
    python = []
    for c in cases:
        try:
            VerifyKey(bytes.fromhex(c["key"])).verify(bytes.fromhex(c["signature"]),
                                                      bytes.fromhex(c["message"]))  # fmt: skip
            python.append(True)
        except CryptoError:
            python.append(False)
    assert True in python
    assert False in python
    await browser.open(web_server.url + "/")  # a secure context (loopback), the app's origin
    chromium = await browser("ed25519", cases=cases)
    assert dict(zip([c["name"] for c in cases], chromium, strict=True)) == dict(
        zip([c["name"] for c in cases], python, strict=True)
    )
