"""Commands: onboarding (``org keygen``, ``enrol [request|complete]``, ``org certify``,
``device revoke``, ``whoami``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import WrongPassphrase

from ..profile import Profile, ProfileInfo
from .codes import usage
from .context import Ctx, confirm, prompt_passphrase, wrong_passphrase
from .registry import arg, command

if TYPE_CHECKING:
    from opseal.crypto.keys import SigningKey


# -- onboarding -------------------------------------------------------------------------------
@command("org keygen", "create the organisation root key (focal point)")
async def org_keygen(ctx: Ctx) -> None:
    from opseal.crypto.keys import SigningKey

    if ctx.profile.has_key("org-root"):
        raise usage(
            f"profile {ctx.profile.name!r} already holds an organisation root key",
            "keep it; use another --profile to create a new one",
        )
    root = SigningKey.generate()
    ctx.profile.save_root(root, ctx.passphrase(new=True), ctx.kdf_params)
    fingerprint = root.verify_key.fingerprint
    ctx.out.result(
        {
            "profile": ctx.profile.name,
            "fingerprint": fingerprint,
            "root_key": b64e(root.verify_key.raw),
        },
        [
            f"Organisation root key created in {ctx.profile.path}",
            f"  fingerprint: {fingerprint}",
            f"  public key:  {b64e(root.verify_key.raw)}",
            "Give the fingerprint out of band (e.g. on the nomination letter), keep the",
            "passphrase safe, then run `opseal enrol` with your enrolment code.",
        ],
    )


@command(
    "enrol",
    "enrol this device: `enrol request` then `enrol complete FILE` (keys stay here), or "
    "with a one-time code and the org root (focal point's own machine)",
    arg("step", nargs="?", choices=("request", "complete"), metavar="STEP",
        help="request: make this device's keys and a request for the focal point; "
        "complete FILE: finish with the certificate the focal point sent back"),
    arg("file", nargs="?", metavar="FILE", help="with complete: the focal point's answer"),
    arg("--server", metavar="URL", help="the instance, e.g. https://opseal.example"),
    arg("--code", help="the one-time enrolment code from the instance admin"),
    arg("--org", help="your organisation id"),
    arg("--user", help="your user id"),
    arg("--device", help="a name for this device (unique on the instance)"),
    arg("--kind", choices=("person", "service"), default="person", help="person or service"),
    arg("--name", default="", help="display name of the user"),
    arg("--out", metavar="FILE", help="with request: where to write it (default: stdout)"),
    arg("--log-key", metavar="FINGERPRINT", default="",
        help="the audit log key fingerprint given out of band; enrolment stops if it differs"),
    arg("--root-profile", metavar="NAME",
        help="only for service accounts on the focal point's own machine: the profile holding "
        "the org root (default: this one); people enrol by request so their keys never leave "
        "their device"),
    arg("--ca-bundle", metavar="FILE", default="", help="CA certificates to trust for TLS"),
    arg("--allow-http", action="store_true", help="allow plain http to a non-loopback server"),
)  # fmt: skip
async def enrol(ctx: Ctx) -> None:
    if ctx.args.step == "request":
        return await _enrol_request(ctx)
    if ctx.args.step == "complete":
        return await _enrol_complete(ctx)
    return await _enrol_with_code(ctx)


def _require(ctx: Ctx, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(ctx.args, n)]
    if missing:
        raise usage(f"missing {', '.join(missing)}", "see `opseal enrol --help`")


def _new_profile(ctx: Ctx) -> None:
    if ctx.profile.exists or ctx.profile.has_key("enrol-request"):
        raise usage(
            f"profile {ctx.profile.name!r} is already enrolled or has a pending request",
            "use another --profile for another device",
        )


async def _enrol_request(ctx: Ctx) -> None:
    from .. import enrolment
    from ..client import check_server_url

    a = ctx.args
    _require(ctx, "server", "org", "user", "device")
    _new_profile(ctx)
    check_server_url(a.server, allow_http=a.allow_http)
    info = ProfileInfo(
        server=a.server, org_id=a.org, user_id=a.user, user_kind=a.kind, device_id=a.device,
        ca_bundle=str(Path(a.ca_bundle).resolve()) if a.ca_bundle else "", allow_http=a.allow_http,
    )  # fmt: skip
    request = enrolment.request_enrolment(
        ctx.profile, info=info, passphrase=ctx.passphrase(new=True), name=a.name,
        params=ctx.kdf_params,
    )  # fmt: skip
    text = enrolment.encode_request(request)
    if a.out:
        Path(a.out).write_text(text)
    ctx.out.result(
        {"profile": ctx.profile.name, "fingerprint": request.fingerprint, "request": text},
        [
            *([] if a.out else [text.rstrip()]),
            f"Enrolment request for {a.user} of {a.org}, device {a.device}"
            + (f", written to {a.out}" if a.out else ""),
            f"  request fingerprint: {request.fingerprint}",
            "Give the request to your focal point and read this fingerprint to them (in person or "
            "by phone); then run `opseal enrol complete FILE` with the answer.",
            "Your private keys stay in this profile only.",
        ],
    )


async def _enrol_complete(ctx: Ctx) -> None:
    from opseal.crypto.keys import VerifyKey

    from .. import enrolment

    a = ctx.args
    if not a.file:
        raise usage("enrol complete needs the FILE the focal point sent back")
    if not ctx.profile.has_key("enrol-request"):
        raise usage(
            f"profile {ctx.profile.name!r} has no pending request", "run `opseal enrol request`"
        )
    try:
        response = Path(a.file).read_text()
    except OSError as exc:
        raise usage(f"cannot read {a.file}: {exc.strerror}", "check the path") from exc
    try:
        info = await enrolment.complete_enrolment(
            ctx.profile, response, ctx.passphrase(), log_key=a.log_key, params=ctx.kdf_params
        )
    except WrongPassphrase as exc:
        raise wrong_passphrase(ctx.profile) from exc
    log_fp = VerifyKey(b64d(info.log_key)).fingerprint
    ctx.out.result(
        {"profile": ctx.profile.name, "server": info.server, "org_id": info.org_id,
         "user_id": info.user_id, "device_id": info.device_id, "log_key_fingerprint": log_fp},
        [
            f"Enrolled {info.user_id} of {info.org_id} as device {info.device_id} on {info.server}",
            f"  audit log key fingerprint: {log_fp}",
            "Next: `opseal op list` to see the operations your organisation is invited to.",
        ],
    )  # fmt: skip


async def _enrol_with_code(ctx: Ctx) -> None:
    from opseal.crypto.keys import VerifyKey

    from ..client import Client

    a = ctx.args
    _require(ctx, "server", "code", "org", "user", "device")
    if ctx.profile.exists:
        raise usage(
            f"profile {ctx.profile.name!r} is already enrolled",
            "use another --profile for another device",
        )
    if a.ca_bundle and not Path(a.ca_bundle).is_file():
        raise usage(
            f"--ca-bundle {a.ca_bundle}: no such file", "give a PEM file of CA certificates"
        )
    root = _load_root(ctx, a.root_profile)
    client = await Client.enrol(
        ctx.profile,
        server=a.server,
        code=a.code.strip(),
        passphrase=ctx.passphrase(),
        root=root,
        org_id=a.org,
        user_id=a.user,
        device_id=a.device,
        user_kind=a.kind,
        name=a.name,
        ca_bundle=str(Path(a.ca_bundle).resolve()) if a.ca_bundle else "",
        allow_http=a.allow_http,
        params=ctx.kdf_params,
        log_key=a.log_key,
    )
    await client.close()
    info = client.info
    log_fp = VerifyKey(b64d(info.log_key)).fingerprint
    ctx.out.result(
        {
            "profile": ctx.profile.name,
            "server": info.server,
            "instance_id": info.instance_id,
            "org_id": info.org_id,
            "user_id": info.user_id,
            "device_id": info.device_id,
            "root_fingerprint": root.verify_key.fingerprint,
            "log_key_fingerprint": log_fp,
        },
        [
            f"Enrolled {info.user_id} ({info.user_kind}) of {info.org_id} "
            f"as device {info.device_id} on {info.server}",
            f"  organisation root fingerprint: {root.verify_key.fingerprint}",
            f"  audit log key fingerprint:     {log_fp}",
            "Next: `opseal op list` to see the operations your organisation is invited to.",
        ],
    )


@command(
    "org certify",
    "certify a user's enrolment request after comparing its fingerprint (focal point)",
    arg("request", metavar="REQUEST", help="the request file the user's device made"),
    arg("--fingerprint", metavar="DIGITS",
        help="the fingerprint the user read out (asked for when at a terminal)"),
    arg("--out", metavar="FILE", required=True, help="where to write the answer for the user"),
    arg("--root-profile", metavar="NAME", help="profile holding the org root (default: this one)"),
)  # fmt: skip
async def org_certify(ctx: Ctx) -> None:
    from .. import enrolment

    a = ctx.args
    try:
        text = Path(a.request).read_text()
    except OSError as exc:
        raise usage(f"cannot read {a.request}: {exc.strerror}", "check the path") from exc
    request = enrolment.read_request(text)
    heard = a.fingerprint
    if heard is None:
        if not sys.stdin.isatty():
            raise usage("give --fingerprint", "the digits the user read out to you")
        ctx.out.note(f"Request for {request.user_id} of {request.organisation_id}, "
                     f"device {request.device_cert.device_id}")  # fmt: skip
        heard = input("Fingerprint the user reads out: ")
    root = _load_root(ctx, a.root_profile)
    async with ctx.client() as client:
        cert = await enrolment.certify_request(client.api, client.org_id, root, request, heard)
    Path(a.out).write_text(enrolment.encode_response(cert))
    ctx.out.result(
        {"user_id": cert.user_id, "device_id": request.device_cert.device_id, "out": a.out,
         "fingerprint": request.fingerprint},
        [
            f"Certified {cert.user_id} of {cert.organisation_id} and registered device "
            f"{request.device_cert.device_id}; answer written to {a.out}",
            "Send it to the user: `opseal enrol complete FILE` finishes their enrolment.",
        ],
    )  # fmt: skip


@command(
    "device revoke",
    "revoke one of your organisation's devices with the org root (focal point)",
    arg("device", metavar="DEVICE", help="the device id"),
    arg("--reason", default="", help="why (kept in the signed statement)"),
    arg("--root-profile", metavar="NAME", help="profile holding the org root (default: this one)"),
    arg("--yes", action="store_true", help="do not ask before revoking"),
)
async def device_revoke(ctx: Ctx) -> None:
    confirm(ctx, f"Revoke device {ctx.args.device}? It cannot be undone.")
    root = _load_root(ctx, ctx.args.root_profile)
    async with ctx.client() as client:
        subject = await client.revoke_device(root, ctx.args.device, ctx.args.reason)
    ctx.out.result(
        {"revoked": subject},
        [
            f"Revoked {subject}: its sessions are gone and every member will refuse it.",
            "Coordinators' `opseal admit` removes it from every area at the next round.",
        ],
    )


def _load_root(ctx: Ctx, root_profile: str | None) -> SigningKey:
    holder = Profile(root_profile, ctx.profile.path.parent) if root_profile else ctx.profile
    if not holder.has_key("org-root"):
        raise usage(
            f"profile {holder.name!r} holds no organisation root key",
            "run `opseal org keygen` in it first (or give --root-profile)",
        )
    try:
        # a device enrolled from another profile's root gets a passphrase of its own: confirm it
        return holder.load_root(ctx.passphrase(new=holder is not ctx.profile))
    except WrongPassphrase as exc:
        if holder is ctx.profile or not sys.stdin.isatty():
            raise wrong_passphrase(holder) from exc
    try:
        return holder.load_root(prompt_passphrase(holder.name, new=False))
    except WrongPassphrase as exc:
        raise wrong_passphrase(holder) from exc


@command("whoami", "show this device's organisation, user, device and server")
async def whoami(ctx: Ctx) -> None:
    import msgspec

    async with ctx.client() as client:
        me = await client.api.whoami()
        org = await client.api.organisation(client.org_id)
    data = {
        **msgspec.to_builtins(me),
        "profile": ctx.profile.name,
        "server": client.info.server,
        "instance_id": client.info.instance_id,
        "root_fingerprint": org.fingerprint,
    }
    ctx.out.result(
        data,
        [
            f"{me.user_id} ({me.user_kind}) of {me.org_id}, device {me.device_id}",
            f"  server:   {client.info.server} (instance {client.info.instance_id})",
            f"  profile:  {ctx.profile.path}",
            f"  organisation root fingerprint (as registered): {org.fingerprint}",
        ],
    )
