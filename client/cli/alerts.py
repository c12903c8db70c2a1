"""Commands: receipts and alerts (``ack``, ``acks``, ``alert``, ``respond``)."""

from __future__ import annotations

from .codes import usage
from .context import Ctx, check_may_post, last_warning, parse_day, verified
from .registry import AREA, MESSAGE_ID, OP, arg, command
from .render import table

SENDER = arg(
    "--sender", metavar="DEVICE",
    help="the sending device, when several senders used the message id",
)  # fmt: skip


@command("ack", "acknowledge a message (a signed receipt)", MESSAGE_ID, SENDER)
async def ack(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        await client.ack(ctx.args.message_id, sender=ctx.args.sender)
    ctx.out.result({"acknowledged": ctx.args.message_id}, f"Acknowledged {ctx.args.message_id}")


@command("acks", "who has read and acknowledged a message (coordinator)", MESSAGE_ID, SENDER)
async def acks(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        before = last_warning(client)
        status = await client.acks(ctx.args.message_id, sender=ctx.args.sender)
        fresh = client.warnings(before)  # the server's summary disagreeing with the receipts
        ctx.out.warnings(fresh)
        ctx.fresh_warnings += len(fresh)
    rows = [
        (o["org_id"], o["role"], len(o["members"]), len(o["read"]), len(o["acked"]))
        for o in status["organisations"]
    ]
    pending = status.get("pending_ack_orgs", [])
    ctx.out.result(
        status,
        [
            *table(rows, ("ORGANISATION", "ROLE", "DEVICES", "READ", "ACKNOWLEDGED")),
            f"Still to acknowledge: {', '.join(pending) or 'nobody'}",
        ],
    )


@command(
    "alert",
    "send an alert (request for action) to organisations",
    OP,
    AREA,
    arg("--to", nargs="+", required=True, metavar="ORG", help="target organisations"),
    arg("--action", required=True, help="what you ask them to do"),
    arg("--deadline", metavar="YYYY-MM-DD", help="the day by which to answer"),
)
async def alert(ctx: Ctx) -> None:
    a = ctx.args
    deadline = parse_day(a.deadline, "--deadline") if a.deadline else None
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        message_id = await client.alert(a.op, a.area, a.to, a.action, deadline=deadline)
    ctx.out.result({"message_id": message_id}, f"Alert {message_id} sent to {', '.join(a.to)}")


@command(
    "respond",
    "answer an alert with what you found",
    arg("alert_id", metavar="ALERT_ID", help="the alert's message id"),
    arg("--outcome", required=True, help="what was found or done"),
)
async def respond(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        alert_message = verified(client, ctx.args.alert_id)
        if alert_message.content_type != "alert":
            raise usage(f"message {ctx.args.alert_id} is not an alert", "give an alert's id")
        await check_may_post(client, alert_message.op, alert_message.area)
        message_id = await client.respond(
            alert_message.op, alert_message.area, ctx.args.alert_id, ctx.args.outcome
        )
    ctx.out.result({"message_id": message_id}, f"Response {message_id} posted")
