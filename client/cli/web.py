"""Command: ``web verify`` — is the web app a server hands browsers the one installed here?"""

from __future__ import annotations

from .codes import OK, REFUSED
from .context import Ctx
from .registry import arg, command


@command(
    "web verify",
    "compare the web app served at URL with the one this installation ships (file by file)",
    arg("url", metavar="URL", help="where the app is served, e.g. https://opseal.example.org/"),
)
async def verify(ctx: Ctx) -> int:
    from ..webcheck import check_served

    report = await check_served(ctx.args.url)
    data = {
        "url": report.url,
        "ok": report.ok,
        "installed_bundle_hash": report.installed_hash,
        "served_bundle_hash": report.served_hash,
        "files": report.served,
        "problems": report.problems,
        "content_security_policy": report.csp,
    }
    verdict = (
        f"OK: {report.url} serves the installed web app (bundle {report.installed_hash})"
        if report.ok
        else f"DIFFERS: {report.url} does not serve the installed web app:"
    )
    lines = [verdict, *(f"  {problem}" for problem in report.problems)]
    if report.csp is None:
        lines.append("  note: the page came without a Content-Security-Policy header")
    ctx.out.result(data, lines)
    return OK if report.ok else REFUSED
