"""Commands: records leaving the operation (``export``, ``release``, ``permit-release``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import corrections, export
from ..errors import (
    ApiError,
    TransportError,
)
from ..report import checked_records, reporting_codes
from .codes import CliError
from .context import (
    Ctx,
    check_may_post,
    confirm,
    require_joined,
    verified,
)
from .registry import MESSAGE_ID, OP, arg, command

if TYPE_CHECKING:
    pass


@command(
    "export",
    "write the decrypted seizure records you may read as CSV or JSON",
    OP,
    arg("--format", choices=export.FORMATS, default="csv", help="csv (default) or json"),
    arg("--output", type=Path, metavar="FILE", help="write to FILE, mode 0600 (default: stdout)"),
    arg(
        "--include-personal",
        action="store_true",
        help="keep personal data (consignor, consignee) where the handling code allows; "
        "declared to the server's audit log",
    ),
)
async def export_records(ctx: Ctx) -> None:
    a = ctx.args
    async with ctx.client(sync=True) as client:
        require_joined(client, a.op)
        charter = await client.charter(a.op, refresh=True)
        try:
            rows = export.collect(
                client.read(a.op), client.org_id, charter, include_personal=a.include_personal
            )
        except export.ExportRefused as exc:
            raise CliError(
                str(exc), "export without --include-personal, or ask the originating organisation"
            ) from exc
        if a.include_personal:
            try:
                await client.api.declare("export", a.op, len(rows), include_personal=True)
            except (ApiError, TransportError) as exc:
                raise CliError(
                    f"the export with personal data could not be declared ({exc}); "
                    "nothing was written",
                    "retry when the server answers, or export without --include-personal",
                ) from exc
        _, excluded = checked_records(
            corrections.submissions(client.read(a.op)), reporting_codes(charter)
        )
    for item in excluded:
        ctx.out.warn(str(item))
    h1 = sum(1 for r in rows if r.warnings)
    if h1:
        ctx.out.warn(f"{h1} exported record(s) are {export.H1_WARNING}")
    if a.format == "json":
        body = export.to_json(rows, a.op, include_personal=a.include_personal)
    else:
        body = export.to_csv(rows)
    if a.output is None:
        ctx.out.answered = True
        sys.stdout.write(body)
        sys.stdout.flush()
        return
    _write_private(a.output, body)
    personal = "with" if a.include_personal else "without"
    ctx.out.result(
        {
            "output": str(a.output),
            "records": len(rows),
            "format": a.format,
            "include_personal": a.include_personal,
        },
        f"Exported {len(rows)} records of {a.op} to {a.output} ({personal} personal data).",
    )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only; it appears whole or not at all."""
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(part, path)


class _Refuse(argparse.Action):
    """An option that no longer exists: name what to use instead."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(
            f"{option} is ambiguous and no longer exists: free text is erased unless kept; "
            "name the fields to keep in the copy with --keep FIELD (e.g. --keep description)"
        )


@command(
    "release",
    "put a sanitised copy of a seizure record into a stakeholder area (coordinator)",
    MESSAGE_ID,
    arg("--to", required=True, dest="to_area", metavar="AREA", help="a stakeholder area"),
    arg(
        "--keep",
        action="extend",
        nargs="+",
        default=[],
        metavar="FIELD",
        help="a free-text field to keep in the copy, e.g. description remarks; every other "
        "free-text field is erased (personal data and attachments always are)",
    ),
    arg("--clear", nargs="*", action=_Refuse, help=argparse.SUPPRESS),
    arg("--dry-run", action="store_true", help="show the sanitised copy, release nothing"),
    arg("--yes", action="store_true", help="do not ask before releasing"),
)
async def release_record(ctx: Ctx) -> None:
    from .. import release

    a = ctx.args
    async with ctx.client(sync=True) as client:
        verified(client, a.message_id)
        try:
            source, body = await client.releaser.prepare(a.message_id, a.to_area, a.keep)
        except release.ReleaseRefused as exc:
            raise CliError(str(exc), "see `opseal release --help` and `opseal op charter`") from exc
        erased = release.erased_fields(release.source_record(source), body["record"])
        preview = {"record": body["record"], "erased": erased, "handling": source.handling}
        if a.dry_run:
            ctx.out.result(
                {"source_message_id": a.message_id, "area": a.to_area, **preview},
                [*_preview_text(a.to_area, preview), "Dry run: nothing was released."],
            )
            return
        for line in _preview_text(a.to_area, preview):
            ctx.out.note(line)
        confirm(ctx, f"Release this copy to every reader of {a.to_area}? It cannot be undone.")
        release_id = await client.release(a.message_id, a.to_area, a.keep)
    ctx.out.result(
        {"message_id": release_id, "source_message_id": a.message_id, "area": a.to_area,
         **preview},
        f"Released {a.message_id} into {a.to_area} as {release_id}",
    )  # fmt: skip


def _preview_text(area: str, preview: dict[str, Any]) -> list[str]:
    record = preview["record"]
    kept = [f"  {k}: {v}" for k, v in record.items() if k != "goods"]
    for n, line in enumerate(record.get("goods") or [], start=1):
        kept.append(f"  goods[{n}]: " + ", ".join(f"{k}={v}" for k, v in line.items()))
    return [
        f"The copy {area} would receive ({preview['handling']}):",
        *kept,
        f"Erased: {', '.join(preview['erased']) or 'nothing'}",
    ]


@command(
    "permit-release",
    "permit the coordinator to release your H2 seizure record to stakeholders",
    MESSAGE_ID,
    arg("--note", default="", help="the permission's text (default: a standard sentence)"),
)
async def permit_release(ctx: Ctx) -> None:
    from .. import release

    a = ctx.args
    async with ctx.client(sync=True) as client:
        source = verified(client, a.message_id)
        if source.org != client.org_id or source.content_type != "seizure":
            raise CliError(
                f"{a.message_id} is not a seizure record of {client.org_id}",
                "only the originating organisation permits the release of its records",
            )
        await check_may_post(client, source.op, source.area)
        payload = release.permission(source.message_id, a.note)
        permission_id = await client.post(source.op, source.area, "text", payload)
    ctx.out.result(
        {"message_id": permission_id, "permits": a.message_id},
        f"Permitted the release of {a.message_id} ({permission_id})",
    )
