"""Commands: audit, outbox and sync (``audit verify``, ``outbox``, ``sync``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..enrolment import CHECKPOINT_MAX_AGE
from .codes import OK, REFUSED, WARNINGS
from .context import Ctx, last_warning, refusal_json, report_refused, send
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
    async with ctx.client() as client:
        before = last_warning(client)
        report = await client.verify_audit(ctx.args.max_age)
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
async def sync(ctx: Ctx) -> int:
    async with ctx.client(login=False) as client:
        pending = [i.message_id for i in client.store.pending(1 << 30)]
        await ctx.connect(client)
        sent, refused = await send(client, ctx, pending)
        before = last_warning(client)
        report = await ctx.sync(client)
        fresh = client.warnings(before)
    data = {
        "sent": sent,
        "refused_submissions": [refusal_json(r) for r in refused],
        **dataclasses.asdict(report),
        "warnings": [warning_json(w) for w in fresh],
    }
    ctx.out.result(
        data,
        f"Sent {sent}; received {report.entries} entries ({report.messages} messages, "
        f"{report.commits} commits); {report.refused} refused.",
    )
    if refused:
        report_refused(ctx, refused)
        return REFUSED
    return OK
