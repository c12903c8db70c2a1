"""Commands: audit, outbox and sync (``audit verify``, ``outbox``, ``sync``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..enrolment import CHECKPOINT_MAX_AGE
from .codes import WARNINGS
from .context import Ctx, last_warning, parse_time, reusing_login, send
from .registry import RETRY, arg, command
from .render import table, warning_json, when


# -- audit, outbox, sync ----------------------------------------------------------------------
@command(
    "audit verify",
    "verify the audit log against its key and your last check",
    arg("--max-age", type=int, default=CHECKPOINT_MAX_AGE, metavar="S",
        help="warn (exit 4) when the newest checkpoint is older than this"),
)  # fmt: skip
async def audit_verify(ctx: Ctx) -> int | None:
    async with ctx.client(login=False) as client:
        before = last_warning(client)
        report = await reusing_login(client, lambda: client.verify_audit(ctx.args.max_age))
        stale = [w for w in client.warnings(before) if w[4] == "checkpoint-stale"]
    cp = report.checkpoint
    ctx.out.result(
        {"size": report.size, "root": report.root.hex(), "entries_checked": report.entries_checked,
         "checkpoint_time": cp.timestamp, "log_id": cp.log_id},
        [
            f"Audit log verified: {report.size} entries, root {report.root.hex()}",
            f"  checkpoint of {when(cp.timestamp)} signed by the pinned log key; it extends "
            "the last checkpoint this profile saw",
            *(f"warning: {w[5]}" for w in stale),
        ],
    )  # fmt: skip
    return WARNINGS if stale else None


@command(
    "audit log",
    "list the audit log entries you may read, after verifying the log (auditors read all)",
    arg("--since", metavar="TIME", help="only entries from TIME on (YYYY-MM-DD or ISO time)"),
    arg("--kind", action="append", default=[], metavar="EVENT",
        help="only entries of this event, e.g. login, phase-changed (repeat)"),
)  # fmt: skip
async def audit_log(ctx: Ctx) -> int | None:
    a = ctx.args
    since = parse_time(a.since, "--since") if a.since else None
    async with ctx.client(login=False) as client:
        report = await reusing_login(client, lambda: client.verify_audit())
    entries = [
        {"index": index, **{k: v for k, v in entry.items() if k != "salt"}}
        for index, entry in report.shown
        if (since is None or int(entry.get("time", 0)) >= since)
        and (not a.kind or entry.get("event") in a.kind)
    ]
    rows = [(e["index"], when(e.get("time", 0)), e.get("event", "?"), _details(e))
            for e in entries]  # fmt: skip
    ctx.out.result(
        {"size": report.size, "hidden": report.hidden, "entries": entries},
        [
            *table(rows, ("INDEX", "TIME", "EVENT", "DETAILS")),
            f"{len(entries)} entries shown of {report.size} in the verified log; "
            f"{report.hidden} are not for this device to read (need to know).",
        ]
        if entries
        else f"No entries to show; the verified log holds {report.size}, {report.hidden} of "
        "them not for this device to read (need to know).",
    )
    return None


def _details(entry: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("index", "time", "event"))


@command("outbox", "show submissions waiting to be sent")
async def outbox(ctx: Ctx) -> None:
    async with ctx.client(login=False) as client:
        rows = client.store.outbox_summary()
    keys = ("operation_id", "area", "status", "count", "max_attempts", "last_error")
    data: list[dict[str, Any]] = [dict(zip(keys, r, strict=True)) for r in rows]
    pending = sum(r["count"] for r in data if r["status"] == "pending")
    text = table([[c if c is not None else "-" for c in r] for r in rows],
                 ("OPERATION", "AREA", "STATUS", "COUNT", "ATTEMPTS", "LAST ERROR"))  # fmt: skip
    ctx.out.result(
        {"pending": pending, "areas": data},
        [*text, f"{pending} pending" + ("; `opseal sync` sends them" if pending else "")]
        if rows
        else "The outbox is empty.",
    )


@command("sync", "send the outbox, fetch and verify everything new", RETRY)
async def sync(ctx: Ctx) -> None:
    async with ctx.client() as client:
        sent = await send(client, ctx)
        before = last_warning(client)
        report = await ctx.sync(client)
        fresh = client.warnings(before)
    data = {
        "sent": sent,
        **dataclasses.asdict(report),
        "warnings": [warning_json(w) for w in fresh],
    }
    ctx.out.result(
        data,
        f"Sent {sent}; received {report.entries} entries ({report.messages} messages, "
        f"{report.commits} commits); {report.refused} refused.",
    )
