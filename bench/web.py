"""Web app benchmark (design §17): Debian's Chromium opens an area holding 1,000 messages
and verifies and decrypts them all in the page; and the size of the app's bundle gzipped.

Sets up a real server on SQLite in a temporary folder, the test world's organisations with
Python clients, and a French officer's browser device enrolled by request and admitted (as
the browser tests do); a Python member posts 1,000 messages; the timed step is the officer
opening the area: fetching the new entries, verifying each (roster, signature, epoch,
replay) and decrypting it, and showing it. Needs node, a built app (`make web-build`) and
/usr/bin/chromium. The last line printed is one JSON object.

Usage: ``.venv/bin/python bench/web.py [--messages N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' helpers: the world, the browser driver

from opseal.client import content  # noqa: E402
from opseal.crypto.charter import Charter, Member  # noqa: E402
from opseal.crypto.keys import SigningKey  # noqa: E402
from opseal.server.config import Settings  # noqa: E402
from opseal.server.services import instance as admin  # noqa: E402
from opseal.server.storage.db import make_engine, migrate  # noqa: E402
from opseal.wire.bundle import installed  # noqa: E402
from tests.client.conftest import (  # noqa: E402
    AREAS,
    ORGS,
    PASSPHRASE,
    REPORTING,
    Onboarded,
    enrol_client,
)
from tests.server.conftest import start_server  # noqa: E402
from tests.web.browser import Browser  # noqa: E402
from tests.web.test_officer import OP, enrol  # noqa: E402


def bundle_gzip_kb() -> float:
    bundle = installed()
    if bundle is None:
        raise SystemExit("the web app is not built: run `make web-build`")
    return round(sum(len(gzip.compress(d, 9, mtime=0)) for d in bundle.files.values()) / 1024, 1)


async def world(server, home: Path) -> Onboarded:
    """The test world's operation 'STOP V', every member joined and admitted."""
    roots = {org: SigningKey.generate() for org in ORGS}
    clients = {org: await enrol_client(server, home, org, f"{org}-user", f"{org}-device",
                                       roots[org]) for org in ORGS}  # fmt: skip
    wco = clients["wco"]
    draft = Charter.create(
        operation_id=OP, code="STOP V", name="Operation STOP V", starts_at=wco.now(),
        ends_at=wco.now() + 30 * 86400, issued_at=wco.now() - 5, areas=AREAS,
        members=[Member(org, n, k, r, roots[org].verify_key, REPORTING.get(org, ()))
                 for org, (n, k, r) in ORGS.items()],
    )  # fmt: skip
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    await wco.create_operation(draft, user_key)
    for org, client in clients.items():
        if org != "wco":
            await client.join(OP, roots["wco"].verify_key.key_id)
    await wco.admit()
    return Onboarded(clients, roots, OP, home)


async def run(count: int, profile: bool) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/opseal.db"
        await asyncio.to_thread(migrate, url)
        engine = make_engine(url)
        await admin.initialise(engine, int(time.time()))
        await engine.dispose()
        server = await start_server(Settings(database_url=url, rate_limit_per_minute=10**7,
                                             log_level="warning"))  # fmt: skip
        onboarded = await world(server, Path(tmp))
        browser = await Browser.launch()
        try:
            # without the stream: it would verify the messages as they are posted, before
            # the timed step (the page still fetches and verifies them all when opened)
            await browser("holdStreams")
            await enrol(browser, onboarded, server.url, "fr-customs", "fr-bench", "seizures")
            de = onboarded.clients["de-customs"]
            await de.sync()
            for start in range(0, count, 500):
                items = [("text", content.text(f"bench message {i}"))
                         for i in range(start, min(count, start + 500))]  # fmt: skip
                de.enqueue(OP, "seizures", items)
            await de.flush()
            if profile:
                await browser("profileStart")
            await browser.click("seizures")
            status = await browser.wait_text(
                rf"^{count} messages verified and decrypted in", 120_000
            )
            if profile:
                print("\n".join(await browser("profileStop")), file=sys.stderr)
            ms = int(re.search(r"in (\d+) ms", status).group(1))  # type: ignore[union-attr]
        finally:
            await browser.close()
            for client in onboarded.clients.values():
                await client.close()
            await server.runner.cleanup()
    return {"messages": count, "open_1000_ms": ms, "bundle_gzip_kb": bundle_gzip_kb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print the page's hot functions")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.profile))))


if __name__ == "__main__":
    main()
