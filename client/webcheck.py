"""Checks a served copy of the web app against the bundle this installation ships (design §17).

:func:`check_served` fetches the page at a URL as a browser would, then every script and style
sheet the page loads, and compares each file's SHA-256 with the installed manifest; it also
checks that each tag's SRI hash is that of the bytes served, and that nothing is loaded from
another origin. What it reports names each file that differs.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from opseal.wire.bundle import INDEX, Bundle, bundle_hash, differences, installed

from .errors import ClientError, TransportError

__all__ = ["Report", "check_served"]


@dataclass
class Report:
    """What a served bundle looks like next to the installed one."""

    url: str
    installed_hash: str
    served: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    csp: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def served_hash(self) -> str | None:
        """The bundle hash of what was served (None when a file could not be fetched)."""
        if any(digest is None for digest in self.served.values()):
            return None
        return bundle_hash({name: d for name, d in self.served.items() if d is not None})


class _Tags(HTMLParser):
    """The scripts and style sheets a page loads: (url, integrity) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[tuple[str, str | None]] = []
        self.inline = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.loads.append((a["src"] or "", a.get("integrity")))
        elif tag == "script" or tag == "style":
            self.inline += 1
        elif tag == "link" and "stylesheet" in (a.get("rel") or "").split():
            self.loads.append((a.get("href") or "", a.get("integrity")))


def _sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


async def check_served(url: str, bundle: Bundle | None = None) -> Report:
    """Fetch the app served at ``url`` and compare it with ``bundle`` (default: installed)."""
    import aiohttp

    bundle = bundle if bundle is not None else installed()
    if bundle is None:
        raise ClientError("this installation of OpSeal holds no built web app to compare with")
    base = url if url.endswith("/") else url + "/"
    report = Report(base, bundle.bundle_hash)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            page = await _fetch(session, base, report, INDEX)
            if page is not None:
                await _check_loads(session, base, page, report)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TransportError(f"cannot fetch the web app at {base}: {exc}") from exc
    report.problems[:0] = differences(bundle.hashes, report.served)
    return report


async def _fetch(session: object, url: str, report: Report, name: str) -> bytes | None:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    async with session.get(url, allow_redirects=False) as answer:
        data = await answer.read()
        if name == INDEX:
            report.csp = answer.headers.get("Content-Security-Policy")
        if answer.status != 200:
            report.served[name] = None
            report.problems.append(f"{name}: HTTP {answer.status} at {url}")
            return None
    report.served[name] = hashlib.sha256(data).hexdigest()
    return data


async def _check_loads(session: object, base: str, page: bytes, report: Report) -> None:
    tags = _Tags()
    tags.feed(page.decode("utf-8", errors="replace"))
    if tags.inline:
        report.problems.append(f"{INDEX}: holds {tags.inline} inline script or style element(s)")
    origin = urlsplit(base)[:2]
    for ref, integrity in tags.loads:
        target = urljoin(base, ref)
        if urlsplit(target)[:2] != origin or not target.startswith(base):
            report.problems.append(f"{INDEX}: loads {target}, outside the app's origin and folder")
            continue
        name = target[len(base) :]
        data = await _fetch(session, target, report, name)
        if data is not None and integrity != _sri(data):
            report.problems.append(
                f"{name}: its SRI hash in {INDEX} is not that of the bytes served"
            )
