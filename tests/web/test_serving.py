"""The server hands browsers the installed web app under a strict policy, and
``opseal web verify`` tells a faithful copy from a tampered one, naming the file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from opseal.server.config import ConfigError, Settings

from ..client.malicious import RewritingProxy
from ..server.conftest import start_server

OPSEAL = Path(sys.executable).parent / "opseal"


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, dict(answer.headers), await answer.read()


async def opseal(*args: str) -> tuple[int, dict, str]:
    proc = await asyncio.create_subprocess_exec(
        str(OPSEAL), "--json", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, json.loads(out), err.decode()


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


async def test_the_page_comes_with_a_strict_policy(web_server):
    """The page and its assets carry a CSP allowing only this origin, no inline script or
    style, no framing and no form target, plus nosniff and no referrer."""
    status, headers, page = await get(web_server.url + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    csp = directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert not [v for values in csp.values() for v in values if "unsafe" in v or "://" in v]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-cache"
    assert not re.search(rb"<script(?![^>]*\bsrc=)|<style|\son[a-z]+=", page)


async def test_every_tag_s_sri_hash_is_that_of_the_bytes_served(web_server, bundle):
    """Each script and style sheet the page loads is served with the hash its tag pins, as
    the installed manifest lists it, and is cached for good under its hashed name."""
    _, _, page = await get(web_server.url + "/")
    tags = re.findall(rb'(?:src|href)="(assets/[^"]+)" integrity="sha256-([^"]+)"', page)
    assert {name.decode() for name, _ in tags} == set(bundle.files) - {"index.html"}
    for name, sri in tags:
        status, headers, data = await get(f"{web_server.url}/{name.decode()}")
        assert status == 200
        assert base64.b64decode(sri) == hashlib.sha256(data).digest()
        assert hashlib.sha256(data).hexdigest() == bundle.hashes[name.decode()]
        assert headers["Content-Type"].split(";")[0] in ("text/javascript", "text/css")
        assert "immutable" in headers["Cache-Control"]
        assert headers["X-Content-Type-Options"] == "nosniff"


async def test_config_names_this_origin_and_the_bundle(web_server, bundle):
    """config.json points the app at this origin and states the bundle hash."""
    status, _, body = await get(web_server.url + "/config.json")
    assert status == 200
    assert json.loads(body) == {"api": "", "bundle_hash": bundle.bundle_hash,
                                "lock_after_seconds": 900}  # fmt: skip


async def test_unknown_assets_are_not_found(web_server):
    """A file that is not part of the bundle answers 404 with the API's error body."""
    status, _, body = await get(web_server.url + "/assets/app-0000000000000000.js")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"


async def test_web_verify_passes_for_the_real_server(web_server, bundle):
    """``opseal web verify`` finds every served file equal to the installed one."""
    code, report, err = await opseal("web", "verify", web_server.url)
    assert code == 0, err
    assert report["ok"]
    assert report["problems"] == []
    assert report["served_bundle_hash"] == report["installed_bundle_hash"] == bundle.bundle_hash
    assert set(report["files"]) == set(bundle.files)


@pytest.mark.parametrize("kind", ["js", "css"])
async def test_web_verify_names_a_tampered_asset(web_server, bundle, kind):
    """A proxy that changes one byte of an asset is caught, and the report names that file
    (its hash and its broken SRI)."""
    proxy = RewritingProxy(web_server.url)
    proxy.rewrite_bytes(rf"/assets/app-[0-9a-f]{{16}}\.{kind}", lambda data: data + b"\n")
    await proxy.start()
    try:
        code, report, _ = await opseal("web", "verify", proxy.url + "/")
    finally:
        await proxy.close()
    [name] = [n for n in bundle.files if n.endswith(f".{kind}")]
    assert code == 1
    assert not report["ok"]
    assert [p.split(":")[0] for p in report["problems"]] == [name, name]
    assert "installed" in report["problems"][0]
    assert "SRI" in report["problems"][1]


async def test_web_verify_names_a_page_that_loads_another_script(web_server, bundle):
    """A page rewritten to load a script from elsewhere is caught: the page differs and the
    foreign script is named."""
    proxy = RewritingProxy(web_server.url)
    evil = b'<script src="https://cdn.evil.example/x.js"></script></head>'
    proxy.rewrite_bytes(r"/", lambda page: page.replace(b"</head>", evil))
    await proxy.start()
    try:
        code, report, _ = await opseal("web", "verify", proxy.url)
    finally:
        await proxy.close()
    assert code == 1
    assert report["problems"][0].startswith("index.html: sha256 ")
    assert "loads https://cdn.evil.example/x.js" in report["problems"][1]


async def test_pages_of_a_configured_origin_may_call_the_api(web_server):
    """CORS answers the origins of the setting web_origins (an intranet copy of the app),
    preflights included, and no other origin."""
    _, headers, _ = await get(
        web_server.url + "/api/v1/instance", Origin="https://intranet.example"
    )
    assert "Access-Control-Allow-Origin" not in headers
    settings = web_server.ctx.settings.replace(web_origins="https://intranet.example")
    other = await start_server(settings)
    try:
        url = other.url + "/api/v1/instance"
        _, headers, _ = await get(url, Origin="https://intranet.example")
        assert headers["Access-Control-Allow-Origin"] == "https://intranet.example"
        _, headers, _ = await get(url, Origin="https://evil.example")
        assert "Access-Control-Allow-Origin" not in headers
        async with aiohttp.ClientSession() as session, session.options(url, headers={
            "Origin": "https://intranet.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"}) as answer:  # fmt: skip
            assert answer.status == 204
            assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
    finally:
        await other.runner.cleanup()
    with pytest.raises(ConfigError, match="web_origins"):
        Settings(web_origins="https://intranet.example/opseal")
