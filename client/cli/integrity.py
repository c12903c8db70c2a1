"""Command: ``warnings`` — the open integrity warnings of this device, each with what to do."""

from __future__ import annotations

from typing import Any

from .codes import OK, WARNINGS
from .context import Ctx
from .registry import command
from .render import table, warning_json

TODO = {
    "gap": "the server skipped entries; each sync asks for them again and clears this once "
    "they arrive; if it stays, tell the instance admin and your coordinator",
    "charter-refused": "the charter does not verify from the pinned root: check the root key "
    "with your coordinator (`opseal op charter OP`)",
    "message-refused": "a message failed verification and is not shown; report it to your "
    "coordinator and the instance admin",
    "commit-refused": "a membership change failed verification; report it to your coordinator",
    "key-package-refused": "a device's request to join failed verification; report it to its "
    "focal point",
    "submission-refused": "the server refused a submission of yours: `opseal outbox` lists it",
    "store-tampered": "this device's local store was altered: enrol a new device and revoke "
    "this one",
    "checkpoint-stale": "the audit log has no recent checkpoint: tell the instance admin",
    "revocation-refused": "a revocation failed verification; report it to the instance admin",
    "receipt-refused": "an acknowledgement failed verification; report it to your coordinator",
    "acks-unverified": "the server's acknowledgement summary disagrees with the signed receipts",
    "attachment-refused": "an attachment failed its checks and was not written",
    "admit-failed": "an admission round failed; run `opseal admit` to see why",
    "admit-refused": "an admission was refused; run `opseal admit` to see why",
    "stream-malformed": "the stream sent something that is not the API's; check the server",
}
DEFAULT_TODO = "report it to your coordinator and the instance admin"


@command("warnings", "list the open integrity warnings, each with what to do (after a sync)")
async def warnings(ctx: Ctx) -> int:
    async with ctx.client(login=False) as client:
        synced = await ctx.connect(client, wait=False)  # a sync clears what it set right
        rows = client.warnings()
        gaps = {(op, area): g for op, area in client.store.areas() if (g := client.gaps(op, area))}
    items: list[dict[str, Any]] = [
        {**warning_json(w), "todo": TODO.get(w[4], DEFAULT_TODO)} for w in rows
    ]
    missing = [
        {"operation_id": op, "area": area, "sender": sender, "counters": counters}
        for (op, area), senders in gaps.items()
        for sender, counters in senders.items()
    ]
    ctx.shown_warnings.update(w[0] for w in rows)
    ctx.fresh_warnings = 0  # listed below, not again as fresh
    text = [
        *table(
            [
                [
                    f"{i['operation_id'] or '-'}/{i['area'] or '-'}",
                    i["kind"],
                    i["message"],
                    i["todo"],
                ]
                for i in items
            ],
            ("WHERE", "KIND", "WHAT", "WHAT TO DO"),
        ),
        *(
            f"{m['operation_id']}/{m['area']}: possibly missing messages {m['counters']} from "
            f"{m['sender']}: each sync asks again; if it stays, ask the sender whether they were "
            "sent"
            for m in missing
        ),
    ]
    if not synced:
        text.append("(the server did not answer: as of the last sync)")
    ctx.out.result(
        {"warnings": items, "possibly_missing": missing, "synced": synced},
        text if items or missing else "No open warnings.",
    )
    return WARNINGS if items or missing else OK
