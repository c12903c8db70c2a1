"""The web app in Debian's Chromium against the real server (design §17)."""

from __future__ import annotations

from .test_serving import directives


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
