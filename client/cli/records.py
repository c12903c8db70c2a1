"""Commands: seizure records (``submit seizures``, ``template seizures``, ``report``); what
leaves the operation (``export``, ``release``) is in :mod:`.sharing`."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import content, corrections
from ..errors import (
    ClientError,
    SubmissionRefused,
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
from .context import (
    Ctx,
    queue_first,
    refusal_json,
    report_refused,
    require_joined,
    send,
)
from .registry import OP, RETRY, arg, command

if TYPE_CHECKING:
    from ..client import Client
    from ..outbox import Queued


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
    RETRY,
)
async def submit_seizures(ctx: Ctx) -> int:
    a = ctx.args
    if not a.file.is_file():
        raise usage(f"{a.file}: no such file", "give the path of a CSV or XLSX file")
    async with ctx.client(login=False) as client:
        # One try to sync (what this organisation submitted decides what is new or changed);
        # an unreachable server is waited for only once the records are queued.
        await ctx.connect(client, wait=False)
        charter = await queue_first(ctx, client, a.op, a.area, lambda: client.stored_charter(a.op))
        assert charter is not None
        reporting = (client.org_id, charter.member(client.org_id).reporting_codes)
        found = _read_csv(a.file, reporting, ReadOptions(a.handling, a.sheet, a.decimal_comma))
        rejected, where = found.rejected, _where(a.file, found.sheet)
        for row in rejected:
            ctx.out.warn(f"{where}: {row}")
        if rejected and a.all_or_nothing:
            _refuse_all(ctx, where, rejected)
        records = _hold_changed(ctx, client, a, found.records)
        codes = dict(zip((r["record_id"] for r in found.records), found.handling, strict=True))
        queued, names = await _submit(ctx, client, a, records, codes)
        refused = client.refusals(queued.ids)
    held = len(queued.ids) - len(refused)
    ctx.out.result(
        {
            "submitted": held,
            "records": len(queued.ids),
            "new": queued.new,
            "already_sent": queued.already,
            "message_ids": queued.ids,
            "refused": [{"record_id": names.get(r.message_id), **refusal_json(r)} for r in refused],
            "rejected": [dataclasses.asdict(r) for r in rejected],
        },
        f"{len(queued.ids)} records: {queued.new} new, {queued.already} already sent or queued "
        f"before; {held} held by the server in {a.op}/{a.area}"
        + (f", {len(refused)} refused" if refused else "")
        + (f"; {len(rejected)} rejected cells withheld their records." if rejected else "."),
    )
    if refused:
        report_refused(ctx, refused, names)
        return REFUSED
    if not rejected:
        return OK
    withheld = len({r.record_id or r.row for r in rejected})
    ctx.out.fail(
        f"{len(rejected)} cells of {where} were rejected; records withheld: {withheld} "
        "(every other record was submitted)",
        "correct the rows listed above and submit the file again (nothing is sent twice)",
    )
    return REFUSED


async def _submit(
    ctx: Ctx, client: Client, a: Any, records: list[dict[str, Any]], codes: dict[str, str]
) -> tuple[Queued, dict[str, str]]:
    """Queue every record (by handling code) before waiting for the server, then send;
    returns what was queued and each message id's record id."""
    from ..outbox import Queued

    ids: list[str] = []
    new = 0
    names: dict[str, str] = {}
    groups = _by_handling(records, codes)
    if a.correct:  # corrections are planned from what the server holds: connect first
        await ctx.connect(client)
        for handling, group in groups:
            try:
                held = await client.post_corrections(a.op, group, area=a.area, handling=handling)
            except SubmissionRefused as exc:
                held = [*exc.accepted, *(r.message_id for r in exc.refused)]
            ids += held
            names.update(zip(held, (str(r["record_id"]) for r in group), strict=False))
        return Queued(ids, len(ids)), names
    for handling, group in groups:
        queued = client.queue_seizures(a.op, group, area=a.area, handling=handling)
        ids += queued.ids
        new += queued.new
        names.update(zip(queued.ids, (str(r["record_id"]) for r in group), strict=True))
    await ctx.connect(client)
    with ctx.out.progress(new, "submitting", "record") as bar:
        await send(client, ctx, ids, bar.update)
    return Queued(ids, new), names


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
    # Only this organisation's versions of these records are opened (the store's index).
    ids = [r["record_id"] for r in records]
    own = corrections.own_versions(client.store, a.op, a.area, client.org_id, ids)
    mine = corrections.submissions(own)
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
        require_joined(client, a.op)
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
