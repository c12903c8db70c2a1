"""Commands: attachments (``attach``, ``download``)."""

from __future__ import annotations

from pathlib import Path

from .. import content as payloads
from .codes import CliError, usage
from .context import Ctx, check_may_post, send, verified
from .registry import AREA, HANDLING, MESSAGE_ID, OP, RETRY, arg, command
from .render import redacted


@command(
    "attach",
    "encrypt and upload a file, post it as a document",
    OP,
    AREA,
    arg("file", type=Path, metavar="FILE", help="the file to attach"),
    arg("--title", help="the document's title (default: the file name)"),
    arg("--media-type", help="MIME type (default: guessed from the name)"),
    arg("--requires-ack", action="store_true", help="ask every organisation to acknowledge"),
    arg("--handling", choices=HANDLING, default="H0", help="handling code (default H0)"),
    RETRY,
)
async def attach(ctx: Ctx) -> None:
    a = ctx.args
    if not a.file.is_file():
        raise usage(f"{a.file}: no such file", "give the path of the file to attach")
    async with ctx.client(sync=True) as client:
        await check_may_post(client, a.op, a.area)
        with ctx.out.progress(a.file.stat().st_size, f"uploading {a.file.name}", "B") as bar:
            attachment = await client.upload(
                a.op, a.area, a.file, media_type=a.media_type, progress=bar.update
            )
        content = payloads.document(a.title or a.file.name, [attachment])
        [message_id] = client.enqueue(
            a.op, a.area, [("document", content)], handling=a.handling,
            requires_ack=a.requires_ack,
        )  # fmt: skip
        await send(client, ctx)
    ctx.out.result(
        {"message_id": message_id, "content": redacted(content)},
        f"Posted document {message_id} with {a.file.name} ({a.file.stat().st_size} bytes)",
    )


@command(
    "download",
    "download and decrypt the attachments of a message",
    MESSAGE_ID,
    arg("dest", type=Path, metavar="DEST", help="a file (one attachment) or an existing folder"),
    arg("--clobber", action="store_true", help="overwrite files that already exist"),
)
async def download(ctx: Ctx) -> None:
    async with ctx.client(sync=True) as client:
        message = verified(client, ctx.args.message_id)
        files = payloads.attachments_of(message.json())
        if not files:
            raise CliError(f"message {message.message_id} has no attachment", "check the id")
        targets = _targets(ctx.args.dest, [f.meta.file_name for f in files])
        _check_clobber(targets, ctx.args.clobber)
        for file, dest in zip(files, targets, strict=True):
            size = file.meta.ciphertext_size
            with ctx.out.progress(size, f"downloading {dest.name}", "B") as bar:
                await client.download(file.meta, file.blob_id, dest, progress=bar.update)
    ctx.out.result({"files": [str(t) for t in targets]}, [f"Saved {t}" for t in targets])


def _targets(dest: Path, names: list[str]) -> list[Path]:
    if dest.is_dir():
        return [dest / _safe_name(name, n) for n, name in enumerate(names)]
    if len(names) > 1:
        raise usage(f"the message has {len(names)} attachments", "give a folder as DEST")
    if not dest.parent.is_dir():
        raise usage(f"{dest.parent}: no such folder", "create it first")
    return [dest]


def _check_clobber(targets: list[Path], clobber: bool) -> None:
    """Refuse, before downloading anything, to overwrite a file unless --clobber."""
    there = [t for t in targets if t.exists() or t.is_symlink()]
    if there and not clobber:
        raise usage(
            f"{', '.join(str(t) for t in there)} already exists; nothing was downloaded",
            "give another DEST, or --clobber to overwrite",
        )


def _safe_name(name: str, n: int) -> str:
    """The sender's file name without any folder part, so it cannot escape DEST."""
    base = Path(str(name).replace("\\", "/")).name
    return base if base not in ("", ".", "..") else f"attachment-{n + 1}"
