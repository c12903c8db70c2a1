"""Commands: seizure records (``submit seizures``, ``template seizures``, ``report``,
``export``, ``release``, ``permit-release``)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from .. import content, corrections, export, release
from ..client import Client
from ..errors import (
    ApiError,
    ClientError,
    TransportError,
)
from ..report import aggregate, checked_records, released_records, reporting_codes
from ..report_render import FORMATS as REPORT_FORMATS
from ..report_render import render as render_report
from ..seizures import (
    COLUMNS,
    HANDLING,
    REQUIRED_COLUMNS,
    ReadOptions,
    RecordError,
    Reporting,
    RowError,
    SeizureFile,
    load_seizures,
    write_seizures_csv,
    write_seizures_xlsx,
)
from .codes import OK, REFUSED, WARNINGS, CliError, usage
from .context import Ctx, check_may_post, confirm, verified
from .registry import MESSAGE_ID, OP, arg, command


@command(
    "submit seizures",
    "submit seizure records from a CSV or XLSX file",
    arg(
        "file",
        type=Path,
        metavar="FILE",
        help=f"CSV or XLSX (.xlsx), one goods line per row; columns {', '.join(COLUMNS)} "
        f"(required: {', '.join(REQUIRED_COLUMNS)}); `opseal template seizures` writes one",
    ),
    arg("--op", required=True, help="the operation"),
    arg("--area", default="seizures", help="the area (default seizures)"),
    arg(
        "--all-or-nothing",
        action="store_true",
        help="submit nothing when any row is rejected (default: submit every valid record)",
    ),
    arg(
        "--correct",
        action="store_true",
        help="send records that differ from the version your organisation submitted as "
        "corrections of it (default: report them and send nothing for them)",
    ),
    arg(
        "--handling",
        choices=HANDLING,
        default="H0",
        help="handling code of records whose `handling` cell is empty (default H0; a record "
        "with consignor or consignee gets at least H2 unless its cell says otherwise)",
    ),
    arg(
        "--sheet",
        metavar="NAME",
        help="XLSX: the sheet to read (default: the first whose row 1 has the seizure columns)",
    ),
    arg(
        "--decimal-comma",
        action="store_true",
        help="weight_kg is written 12,5 (a ';'- or tab-separated CSV); never guessed",
    ),
)
async def submit_seizures(ctx: Ctx) -> int:
    a = ctx.args
    if not a.file.is_file():
        raise usage(f"{a.file}: no such file", "give the path of a CSV or XLSX file")
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        charter = await client.charter(a.op)
        reporting = (client.org_id, charter.member(client.org_id).reporting_codes)
        found = _read_csv(a.file, reporting, ReadOptions(a.handling, a.sheet, a.decimal_comma))
        rejected, where = found.rejected, _where(a.file, found.sheet)
        for row in rejected:
            ctx.out.warn(f"{where}: {row}")
        if rejected and a.all_or_nothing:
            _refuse_all(ctx, where, rejected)
        records = _hold_changed(ctx, client, a, found.records)
        codes = dict(zip((r["record_id"] for r in found.records), found.handling, strict=True))
        ids = []
        with ctx.out.progress(len(records), "submitting", "record") as bar:
            for handling, group in _by_handling(records, codes):
                if a.correct:
                    ids += await client.post_corrections(
                        a.op, group, area=a.area, handling=handling
                    )
                    bar.update(len(group))
                else:
                    ids += await client.post_seizures(
                        a.op, group, area=a.area, progress=bar.update, handling=handling
                    )
    ctx.out.result(
        {
            "submitted": len(ids),
            "message_ids": ids,
            "rejected": [dataclasses.asdict(r) for r in rejected],
        },
        f"Submitted {len(ids)} records to {a.op}/{a.area}"
        + (f"; {len(rejected)} rejected cells withheld their records." if rejected else "."),
    )
    if not rejected:
        return OK
    withheld = len({r.record_id or r.row for r in rejected})
    ctx.out.fail(
        f"{len(rejected)} cells of {where} were rejected; records withheld: {withheld} "
        "(every other record was submitted)",
        "correct the rows listed above and submit the file again (nothing is sent twice)",
    )
    return REFUSED


def _where(path: Path, sheet: str | None) -> str:
    return f"{path} (sheet {sheet!r})" if sheet else str(path)


def _by_handling(
    records: list[dict[str, Any]], codes: dict[str, str]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The records grouped by handling code (each group is sent with its code)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(codes[record["record_id"]], []).append(record)
    return sorted(groups.items())


def _refuse_all(ctx: Ctx, path: str, rejected: list[RowError]) -> None:
    ctx.out.result(
        {"submitted": 0, "message_ids": [], "rejected": [dataclasses.asdict(r) for r in rejected]},
        "Submitted nothing (--all-or-nothing).",
    )
    raise CliError(
        f"{len(rejected)} cells of {path} were rejected; nothing was submitted (--all-or-nothing)",
        "correct the rows listed above and submit the file again",
    )


def _hold_changed(ctx: Ctx, client: Client, a: Any, records: list[dict[str, Any]]) -> list[Any]:
    """Without --correct, a record that differs from the version already submitted is
    named (it would not replace it) and the rest go on."""
    if a.correct:
        return records
    mine = corrections.submissions(client.read(a.op, a.area))
    checked = [content.seizure(r) for r in records]
    plan = corrections.plan(a.op, client.org_id, checked, mine)
    for old, record, _ in plan.changed:
        ctx.out.warn(
            f"record {record['record_id']} differs from the version your organisation "
            f"submitted (message {old}); submit with --correct to send it as a correction"
        )
    changed = {r["record_id"] for _, r, _ in plan.changed}
    return [r for r in records if r["record_id"] not in changed]


def _read_csv(path: Path, reporting: Reporting, options: ReadOptions) -> SeizureFile:
    try:
        return load_seizures(path, reporting, options)
    except RecordError as exc:
        raise usage(f"{path}: {exc}", "see `opseal template seizures` for the columns") from exc
    except ClientError as exc:
        raise usage(str(exc), "check that the file is a UTF-8 CSV or an .xlsx workbook") from exc


@command(
    "template seizures",
    "write an empty seizure file with every column (CSV or XLSX)",
    arg("--format", choices=("csv", "xlsx"), default="csv", help="csv (default) or xlsx"),
    arg("--output", type=Path, metavar="FILE", help="where to write (CSV default: stdout)"),
)
async def template_seizures(ctx: Ctx) -> None:
    a = ctx.args
    if a.output is None:
        if a.format == "xlsx":
            raise usage("an XLSX template needs --output FILE", "e.g. --output seizures.xlsx")
        print(",".join(COLUMNS), flush=True)
        return
    try:
        (write_seizures_xlsx if a.format == "xlsx" else write_seizures_csv)(a.output, [])
    except OSError as exc:
        raise usage(f"cannot write {a.output}: {exc.strerror}", "check the path") from exc
    ctx.out.result(
        {"output": str(a.output), "format": a.format, "columns": list(COLUMNS)},
        f"Wrote an empty {a.format.upper()} template to {a.output} "
        f"(required columns: {', '.join(REQUIRED_COLUMNS)}).",
    )


@command(
    "report",
    "aggregate the seizure records you may read (computed here, after a sync)",
    OP,
    arg("--format", choices=tuple(REPORT_FORMATS), help="table (default), json, csv or html"),
    arg("--output", type=Path, metavar="FILE", help="write the report to FILE"),
)
async def report(ctx: Ctx) -> int:
    a = ctx.args
    fmt = a.format or ("json" if ctx.args.json else "table")
    if ctx.args.json and a.output is None and fmt != "json":
        raise usage(f"--json prints the report as JSON; {fmt} needs --output FILE", "add it")
    async with ctx.client(sync=True) as client:
        if client.store.pin(a.op) is None:
            raise CliError(
                f"this device has not joined operation {a.op!r}",
                "see `opseal op list`, then `opseal op join OP --root-key KEY`",
            )
        charter = await client.charter(a.op, refresh=True)
        messages = client.read(a.op)
    if charter.role_of(client.org_id) == "stakeholder":
        return _released_report(ctx, charter, messages, client.org_id)
    records, excluded = checked_records(corrections.submissions(messages), reporting_codes(charter))
    for item in excluded:
        ctx.out.warn(str(item))
    result = {
        "operation_id": a.op,
        "covers": "submitted",
        **aggregate(records),
        "excluded": [dataclasses.asdict(e) for e in excluded],
    }
    return _write_report(ctx, result, fmt, excluded)


def _released_report(ctx: Ctx, charter: Any, messages: list[Any], org: str) -> int:
    """A stakeholder's report: the released records it reads, and saying so."""
    a = ctx.args
    pairs = []
    for m in messages:
        if m.content_type == "release":
            with contextlib.suppress(ValueError):
                pairs.append((m.org, m.json()))
    records = released_records(pairs, charter)
    if not records:
        ctx.out.result(
            {"operation_id": a.op, "covers": "released", "records": 0},
            f"No seizure record has been released to {org} in {a.op} "
            "yet: as a stakeholder, your report covers released records only.",
        )
        return OK
    ctx.out.note(
        f"This report covers the {len(records)} records released to your organisation "
        f"(sanitised copies), not every seizure of {a.op}."
    )
    result = {"operation_id": a.op, "covers": "released", **aggregate(records), "excluded": []}
    return _write_report(ctx, result, a.format or ("json" if a.json else "table"), [])


def _write_report(ctx: Ctx, result: dict[str, Any], fmt: str, excluded: list[Any]) -> int:
    a = ctx.args
    text = render_report(result, fmt)
    if a.output is None:
        if ctx.args.json:
            ctx.out.result(result)
        else:
            sys.stdout.write(text)
            ctx.out.answered = True
        return WARNINGS if excluded else OK
    try:
        a.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise usage(f"cannot write {a.output}: {exc.strerror}", "check the path") from exc
    ctx.out.result(
        {"output": str(a.output), "format": fmt, **result},
        f"Wrote the {fmt} report of {a.op} to {a.output}: {result['totals']['seizures']} "
        f"seizures from {result['totals']['administrations']} administrations.",
    )
    return WARNINGS if excluded else OK


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
        if client.store.pin(a.op) is None:
            raise CliError(
                f"this device has not joined operation {a.op!r}",
                "see `opseal op list`, then `opseal op join OP --root-key KEY`",
            )
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
