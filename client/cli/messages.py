"""Commands: messages (``post``, ``read``, ``tail``)."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

from opseal.crypto.errors import CryptoError

from .. import content as payloads
from .codes import OK, REFUSED, WARNINGS, CliError, usage
from .context import (
    Ctx,
    last_warning,
    queue_first,
    refusal_json,
    report_refused,
    require_joined,
    send,
)
from .registry import AREA, HANDLING, OP, RETRY, arg, command
from .render import WarningRow, message_json, message_text, warning_json, when

if TYPE_CHECKING:
    from ..client import Client
    from ..store import StoredMessage

# -- messages ---------------------------------------------------------------------------------


@command(
    "post",
    "post a text message to an area",
    OP,
    AREA,
    arg("--text", required=True, help="the message (Markdown); - reads it from stdin"),
    arg("--requires-ack", action="store_true", help="ask every organisation to acknowledge"),
    arg("--handling", choices=HANDLING, default="H0", help="handling code (default H0)"),
    RETRY,
)
async def post(ctx: Ctx) -> int:
    a = ctx.args
    text = sys.stdin.read() if a.text == "-" else a.text
    if not text.strip():
        raise usage("--text is empty", "write the message, or pipe it with --text -")
    async with ctx.client(login=False) as client:
        [message_id] = await queue_first(
            ctx, client, a.op, a.area,
            lambda: client.enqueue(a.op, a.area, [("text", payloads.text(text))],
                                   handling=a.handling, requires_ack=a.requires_ack),
        )  # fmt: skip
        await ctx.connect(client)
        _, refused = await send(client, ctx, [message_id])
    ctx.out.result(
        {"message_id": message_id, "submitted": 0 if refused else 1,
         "refused": [refusal_json(r) for r in refused]},
        f"Refused {message_id}" if refused else f"Posted {message_id}",
    )  # fmt: skip
    if refused:
        report_refused(ctx, refused)
        return REFUSED
    return OK


@command(
    "read",
    "show the verified messages of an operation or area",
    OP,
    arg("area", nargs="?", metavar="AREA", help="one area (default: all)"),
    arg("--after", type=int, default=0, metavar="SEQ", help="only entries after this sequence"),
)
async def read(ctx: Ctx) -> int:
    op, area, after = ctx.args.op, ctx.args.area, ctx.args.after
    async with ctx.client(sync=True) as client:
        require_joined(client, op)
        if area is not None:
            await _check_may_read(client, op, area)
        messages = client.read(op, area, after=after)
        warnings = [w for w in client.warnings() if _concerns(w, op, area, after)]
        gaps = _gaps(client, op, area)
        waiting = await _waiting(client, op, area)
    data = {
        "messages": [message_json(m) for m in messages],
        "warnings": [warning_json(w) for w in warnings],
        "gaps": gaps,
        "waiting": waiting,
    }
    pending = [
        f"Waiting to be admitted to {w['area']}"
        + (f" (asked at {when(w['asked_at'])})" if w["asked_at"] else "")
        + "; a coordinator's `opseal admit` lets you in."
        for w in waiting
    ]
    if messages:
        for line in pending:
            ctx.out.note(line)
    ctx.out.result(data, [message_text(m) for m in messages] or pending or "No messages.")
    ctx.out.warnings([w for w in warnings if w[0] not in ctx.shown_warnings])
    for gap_area, senders in gaps.items():
        for sender, counters in senders.items():
            ctx.out.warn(f"{gap_area}: possibly missing messages {counters} from {sender}")
    return WARNINGS if warnings or gaps else OK


async def _waiting(client: Client, op: str, area: str | None) -> list[dict[str, Any]]:
    """The areas (``area``, or every one this organisation reads) this device asked to join
    and is not admitted to yet, with when it asked."""
    from ..admission import asked_key

    charter = await client.charter(op)
    role = charter.role_of(client.org_id)
    names = [area] if area is not None else [a.name for a in charter.areas]
    out = []
    for name in names:
        latest = client.store.latest_state(op, name)
        if not charter.may_read(role, name) or (
            latest is not None and client.store.secret(op, name, latest[0]) is not None
        ):
            continue
        asked = client.store.get(asked_key(op, name))
        out.append({"area": name, "asked_at": int(asked) if asked else None})
    return out


async def _check_may_read(client: Client, op: str, area: str) -> None:
    charter = await client.charter(op)
    try:
        charter.area(area)
        charter.check_may_read(client.org_id, area)
    except CryptoError as exc:
        raise CliError(str(exc), f"see who reads which area with `opseal op charter {op}`") from exc


def _gaps(client: Client, op: str, area: str | None) -> dict[str, dict[str, list[int | list[int]]]]:
    areas = [a for o, a in client.store.areas() if o == op and area in (None, a)]
    return {a: gaps for a in areas if (gaps := client.gaps(op, a))}


def _concerns(w: WarningRow, op: str, area: str | None, after: int) -> bool:
    _id, w_op, w_area, seq, kind, _msg = w
    if kind == "submission-refused":  # about what this device sent: `opseal outbox`
        return False
    return w_op == op and area in (None, w_area or area) and (seq is None or seq > after)


@command(
    "tail",
    "show new messages in all your areas as they arrive",
    arg("--count", type=int, metavar="N", help="stop after N messages"),
    follows=True,
)
async def tail(ctx: Ctx) -> None:
    # No sync first: the stream resumes from the sync cursor, so what arrived since the last
    # command is shown too, verified the same way, and then what arrives next. The stream
    # logs in itself, so a server down at the start is waited for like a later outage.
    import asyncio  # not at the top: `opseal --help` imports this module

    async with ctx.client(login=False) as client:
        ctx.out.note("Following; Ctrl-C to stop.")
        stop, shown = asyncio.Event(), 0

        def show(message: StoredMessage) -> None:
            nonlocal shown
            if stop.is_set():
                return  # past --count (still stored: `opseal read` shows it)
            ctx.out.line(message_json(message), message_text(message))
            shown += 1
            if ctx.args.count is not None and shown >= ctx.args.count:
                stop.set()

        watcher = asyncio.ensure_future(_watch_warnings(ctx, client))
        try:
            await client.tail(show, stop=stop, on_wait=ctx.countdown)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            _report_warnings(ctx, client)


async def _watch_warnings(ctx: Ctx, client: Client) -> None:
    """Show integrity warnings as they are recorded, while a command follows the stream."""
    import asyncio  # not at the top: `opseal --help` imports this module

    while True:
        await asyncio.sleep(1.0)
        _report_warnings(ctx, client)


def _report_warnings(ctx: Ctx, client: Client) -> None:
    since = ctx.seen_warning if ctx.seen_warning is not None else last_warning(client)
    fresh = client.warnings(since)
    ctx.out.warnings(fresh)
    ctx.fresh_warnings += len(fresh)
    ctx.seen_warning = fresh[-1][0] if fresh else since
