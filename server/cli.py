"""``opseal-server``: initialise, migrate, serve and administer an OpSeal instance.

Configuration comes from ``--config FILE`` (TOML) and ``OPSEAL_*`` environment variables.
Exit codes: 0 success, 1 a refused action, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import ssl
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web

from .config import ConfigError, Settings, load_settings
from .errors import OpSealError
from .logging import configure_logging
from .services.onboarding import ORG_KINDS
from .storage.db import SchemaError, check_schema, make_engine, migrate, sqlite_path

__all__ = ["main"]


_UNLOCK_HELP = "read the passphrase from FILE (default: OPSEAL_BACKUP_PASSPHRASE, or asked)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opseal-server", description="Run an OpSeal instance.")
    parser.add_argument("--version", action="version", version=f"opseal {version('opseal')}")
    parser.add_argument("--config", help="TOML settings file (OPSEAL_* variables override it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    upgrade = sub.add_parser("migrate", help="create or upgrade the database schema")
    upgrade.add_argument(
        "--check",
        action="store_true",
        help="change nothing: print the database's revision and the migrations pending, as "
        "JSON; exit 0 when current or newer by expand-only migrations that keep this version "
        "running, 1 when migrations are pending or a newer one does not keep it running",
    )
    sub.add_parser("init", help="create the instance keys (once, after migrate)")
    serve = sub.add_parser("serve", help="serve the API (HTTPS when tls_cert/tls_key are set)")
    serve.add_argument("--host", help="override the host setting")
    serve.add_argument("--port", type=int, help="override the port setting")
    org = sub.add_parser("create-org", help="register an organisation")
    org.add_argument("org_id")
    org.add_argument("--name", required=True)
    org.add_argument("--kind", required=True, help=f"one of: {', '.join(ORG_KINDS)}")
    org.add_argument("--coordinator", action="store_true", help="may coordinate operations")
    org.add_argument("--ttl-hours", type=int, default=168, help="validity of the printed code")
    code = sub.add_parser(
        "enrol-code",
        help="a new one-time code for an organisation's focal point (before it has enrolled; "
        "afterwards the focal point issues codes with `opseal org enrol-code`)",
    )
    code.add_argument("org_id")
    code.add_argument("--ttl-hours", type=int, default=168)
    orgs = sub.add_parser("list-orgs", help="the organisations, their kinds and root fingerprints")
    orgs.add_argument("--json", action="store_true", help="one JSON document")
    sub.add_parser(
        "status",
        help="instance id, log key fingerprint, counts and the web app's bundle hash, as JSON",
    )
    purge = sub.add_parser("purge", help="purge archived operations past their retention")
    purge.add_argument("--dry-run", action="store_true", help="only list what is due")
    blobs = sub.add_parser("blobs", help="attachment storage").add_subparsers(
        dest="blobs_command", required=True, metavar="ACTION"
    )
    move = blobs.add_parser(
        "migrate",
        help="move every blob's bytes from the blob_store setting's store to another",
        description="Stop the nodes, run this, set blob_store to the new store, start them. "
        "An interrupted run loses nothing; run it again to finish.",
    )
    key = sub.add_parser(
        "backup-key",
        help="make the operator key pair backups are sealed to",
        description="Writes FILE (the private key, sealed under a passphrase: keep it off the "
        "server) and FILE.pub (give it to `backup --recipient`).",
    )
    key.add_argument("--out", required=True, metavar="FILE")
    key.add_argument("--passphrase-file", metavar="FILE", help=_UNLOCK_HELP)
    backup = sub.add_parser("backup", help="write an encrypted, consistent snapshot: database, "
                            "blob bytes and instance keys")  # fmt: skip
    backup.add_argument("--recipient", required=True, metavar="FILE.pub",
                        help="the operator public key from `backup-key`")  # fmt: skip
    backup.add_argument("--out", required=True, metavar="FILE")
    restore = sub.add_parser(
        "restore",
        help="restore a backup into a new, migrated database",
        description="Run `opseal-server migrate` on an empty database first; the blob bytes "
        "go to the blob_store setting's store.",
    )
    restore.add_argument("backup_file", metavar="BACKUP")
    restore.add_argument("--key", required=True, metavar="FILE", help="the operator private key")
    restore.add_argument("--passphrase-file", metavar="FILE", help=_UNLOCK_HELP)
    move.add_argument("--to", required=True, metavar="STORE",
                      help="database, file:/absolute/folder or s3://bucket/prefix")  # fmt: skip
    return parser


def _web_app() -> dict[str, Any]:
    """The installed web app's bundle hash, which `opseal web verify` checks served ones by."""
    from opseal.wire.bundle import installed

    bundle = installed()
    if bundle is None:
        return {"built": False, "bundle_hash": None}
    return {"built": True, "bundle_hash": bundle.bundle_hash, "files": len(bundle.files)}


async def _with_context(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from .bus import LocalBus
    from .services.base import Context, load_instance

    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine, settings.migrations_path)
        ctx = Context(settings, engine, await load_instance(engine), LocalBus())
        try:
            return await action(ctx)
        finally:
            await ctx.chunks.close()
    finally:
        await engine.dispose()


async def _init(settings: Settings) -> str:
    from .services.instance import initialise

    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine, settings.migrations_path)
        return await initialise(engine, int(time.time()))
    finally:
        await engine.dispose()


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from .http.app import create_app

    settings = settings.replace(host=host or settings.host, port=port or settings.port)
    engine = make_engine(settings.database_url)
    asyncio.run(_check_then_dispose(engine, settings.migrations_path))
    for warning in exposed_files(settings):
        print(f"opseal-server: warning: {warning}", file=sys.stderr, flush=True)
    context = None
    if settings.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    scheme = "https" if context else "http"
    print(f"opseal-server: serving on {scheme}://{settings.host}:{settings.port}", flush=True)
    app = create_app(settings)
    app.on_startup.append(_drain_on_sigusr1)
    app.on_startup.append(_freeze_startup_objects)
    app.on_shutdown.insert(0, _announce_shutdown)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=context,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    print("opseal-server: stopped", flush=True)


SHUTDOWN_SECONDS = 5.0
"""How long requests in flight get to finish when the server stops (open streams are closed
at once, told to reconnect)."""


async def _freeze_startup_objects(app: web.Application) -> None:
    """Move everything alive after start-up (modules, classes, compiled statements: hundreds
    of thousands of objects that live as long as the process) out of the garbage collector's
    sight. A full collection then walks only what the server made since: measured here,
    54-70 ms pauses of the event loop became 8 ms, and every stream waits out such a pause."""
    gc.collect()
    gc.freeze()


async def _drain_on_sigusr1(app: web.Application) -> None:
    """``kill -USR1`` (``systemctl kill -s USR1 opseal-server@N``) drains the node."""
    from .http.stream import drain

    draining: set[asyncio.Task[None]] = set()

    def start_draining() -> None:
        print("opseal-server: draining (SIGUSR1): streams closed, new ones refused", flush=True)
        task = asyncio.ensure_future(drain(app))
        draining.add(task)
        task.add_done_callback(draining.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, start_draining)


async def _announce_shutdown(app: web.Application) -> None:
    from .http.stream import HUB

    streams = len(app[HUB].subscribers) if HUB in app else 0
    print(
        f"opseal-server: stopping; closing {streams} open streams (their clients are told to "
        f"reconnect) and waiting at most {SHUTDOWN_SECONDS:g} s for requests in flight",
        flush=True,
    )


def exposed_files(settings: Settings) -> list[str]:
    """Warnings for the secret-holding files others may read: the SQLite database (it holds
    the audit log's signing key) with its -wal and -shm files, and the TLS key."""
    db = sqlite_path(settings.database_url)
    secrets: list[tuple[Path, str]] = []
    if db is not None:
        secrets += [(Path(f"{db}{end}"), "holds the audit log signing key") for end in
                    ("", "-wal", "-shm")]  # fmt: skip
    if settings.tls_key:
        secrets.append((Path(settings.tls_key), "is the TLS private key"))
    warnings = []
    for path, what in secrets:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            warnings.append(
                f"{path} {what} and other accounts may read or change it (mode {mode:04o}); "
                f"run `chmod 600 {path}` (and `chmod 700 {path.parent}`)"
            )
    return warnings


async def _check_then_dispose(engine: Any, migrations: str) -> None:
    try:
        notice = await check_schema(engine, migrations)
        if notice:
            print(f"opseal-server: {notice}", file=sys.stderr, flush=True)
    finally:
        await engine.dispose()


async def _purge(ctx: Any, dry_run: bool) -> dict[str, Any]:
    from .services import retention

    due = await retention.due_for_purge(ctx)
    if dry_run:
        return {"due": due}
    return {op: await retention.purge(ctx, op) for op in due}


async def _move(ctx: Any, target: Settings) -> dict[str, Any]:
    from .blobstore import make_chunk_store
    from .services.blob_moves import move_chunks

    spec = target.blob_store
    store = make_chunk_store(spec, s3_endpoint_url=target.s3_endpoint_url,
                             s3_region=target.s3_region)  # fmt: skip
    try:
        counts = await move_chunks(ctx, store)
    finally:
        await store.close()
    return {"from": ctx.settings.blob_store, "to": spec, **counts,
            "next": f"set blob_store = {spec!r} on every node, then start them"}  # fmt: skip


async def _create_org(ctx: Any, args: argparse.Namespace) -> str:
    """Register the organisation and issue its focal point's first code, as one step."""
    from .services import instance

    await instance.create_organisation(
        ctx, args.org_id, args.name, args.kind, can_coordinate=args.coordinator
    )
    return await instance.create_enrolment_code(ctx, args.org_id, ttl=args.ttl_hours * 3600)


def _list_orgs(orgs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"organisations": orgs}, indent=2))
        return
    if not orgs:
        print("No organisations yet: opseal-server create-org ORG --name NAME --kind KIND")
    for org in orgs:
        role = " (may coordinate)" if org["can_coordinate"] else ""
        root = org["fingerprint"] or "not enrolled yet"
        print(f"{org['org_id']:<24} {org['kind']:<28} {root}  {org['name']}{role}")


def _passphrase(args: argparse.Namespace, *, new: bool) -> str:
    import getpass
    import os

    if args.passphrase_file:
        return Path(args.passphrase_file).read_text().rstrip("\n")
    if "OPSEAL_BACKUP_PASSPHRASE" in os.environ:
        return os.environ["OPSEAL_BACKUP_PASSPHRASE"]
    if not sys.stdin.isatty():
        raise ConfigError("no passphrase: give --passphrase-file or OPSEAL_BACKUP_PASSPHRASE")
    first = getpass.getpass("operator key passphrase: ")
    if new and getpass.getpass("again: ") != first:
        raise ConfigError("the two passphrases differ")
    return first


def _backups(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from . import backup

    try:
        if args.command == "backup-key":
            out = Path(args.out)
            fingerprint = backup.make_operator_key(out, _passphrase(args, new=True))
            return {"private_key": str(out), "public_key": f"{out}.pub",
                    "fingerprint": fingerprint,
                    "next": "keep the private key and its passphrase off the server; give "
                    "the .pub file to `opseal-server backup --recipient`"}  # fmt: skip
        if args.command == "backup":
            recipient = backup.read_recipient(Path(args.recipient))
            return asyncio.run(_with_context(settings, lambda ctx: backup.write_backup(
                ctx.engine, ctx.chunks, recipient, Path(args.out),
                postgres=settings.is_postgres)))  # fmt: skip
        passphrase = _passphrase(args, new=False)
        return asyncio.run(_restore(settings, args, passphrase))
    except backup.BackupError as exc:
        raise _Refused(str(exc)) from exc
    except OSError as exc:
        raise _Refused(f"{exc.filename or ''}: {exc.strerror}") from exc


async def _restore(settings: Settings, args: argparse.Namespace, passphrase: str) -> Any:
    from .backup import restore
    from .blobstore import make_chunk_store

    engine = make_engine(settings.database_url)
    chunks = make_chunk_store(settings.blob_store, s3_endpoint_url=settings.s3_endpoint_url,
                              s3_region=settings.s3_region)  # fmt: skip
    try:
        await check_schema(engine, settings.migrations_path)
        return await restore(engine, chunks, Path(args.backup_file), Path(args.key), passphrase,
                             postgres=settings.is_postgres, now=int(time.time()))  # fmt: skip
    finally:
        await chunks.close()
        await engine.dispose()


async def _schema_status(settings: Settings) -> dict[str, Any]:
    from .storage.db import schema_status

    engine = make_engine(settings.database_url)
    try:
        return await schema_status(engine, settings.migrations_path)
    finally:
        await engine.dispose()


class _Refused(Exception):
    """A refused action: printed, exit 1."""


def _run(args: argparse.Namespace, settings: Settings) -> None:
    from .services import instance, onboarding

    if args.command == "migrate" and args.check:
        status = asyncio.run(_schema_status(settings))
        print(json.dumps(status, indent=2))
        if status["state"] == "newer" and status["keeps_running"]:
            print("opseal-server: the database is newer than this version by expand-only "
                  "migrations: this version still runs on it", file=sys.stderr)  # fmt: skip
        elif status["state"] != "current":
            raise _Refused(
                f"{len(status['pending'])} migration(s) pending: run `opseal-server migrate`"
                if status["state"] == "pending"
                else "the database was migrated by a later OpSeal version than this one, "
                "whose migrations do not keep this version running"
            )
    elif args.command == "migrate":
        migrate(settings.database_url, settings.migrations_path)
        print("database is at the latest schema")
    elif args.command == "init":
        instance_id = asyncio.run(_init(settings))
        print(f"instance {instance_id} initialised; next: opseal-server create-org ...")
    elif args.command == "serve":
        _serve(settings, args.host, args.port)
    elif args.command == "create-org":
        code = asyncio.run(_with_context(settings, lambda ctx: _create_org(ctx, args)))
        print(f"organisation {args.org_id} created")
        print(
            f"one-time enrolment code for its focal point (valid {args.ttl_hours} h; send it "
            f"by a channel you trust): {code}"
        )
    elif args.command == "enrol-code":
        code = asyncio.run(
            _with_context(
                settings,
                lambda ctx: instance.first_enrolment_code(
                    ctx, args.org_id, ttl=args.ttl_hours * 3600
                ),
            )
        )
        print(code)
    elif args.command == "list-orgs":
        _list_orgs(asyncio.run(_with_context(settings, onboarding.organisations)), args.json)
    elif args.command == "purge":
        print(
            json.dumps(
                asyncio.run(_with_context(settings, lambda ctx: _purge(ctx, args.dry_run))),
                indent=2,
            )
        )
    elif args.command in ("backup-key", "backup", "restore"):
        print(json.dumps(_backups(args, settings), indent=2))
    elif args.command == "blobs":
        target = settings.replace(blob_store=args.to)  # a bad store stops here (exit 2)
        moved = asyncio.run(_with_context(settings, lambda ctx: _move(ctx, target)))
        print(json.dumps(moved, indent=2))
    elif args.command == "status":
        status = asyncio.run(_with_context(settings, instance.status))
        print(json.dumps({**status, "web_app": _web_app()}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "create-org" and args.kind not in ORG_KINDS:
        parser.error(f"--kind {args.kind!r} is not a known kind; use one of {', '.join(ORG_KINDS)}")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"opseal-server: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    try:
        _run(args, settings)
    except ConfigError as exc:
        print(f"opseal-server: configuration error: {exc}", file=sys.stderr)
        return 2
    except (SchemaError, OpSealError, _Refused) as exc:
        print(f"opseal-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
