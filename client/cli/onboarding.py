"""Commands: onboarding (``org keygen``, ``enrol [request|complete]``, ``org certify``,
``org enrol-code``, ``device revoke``, ``whoami``)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import WrongPassphrase
from opseal.crypto.keys import SigningKey, VerifyKey

from .. import enrolment
from ..client import Client, check_server_url
from ..profile import Profile, ProfileInfo
from .codes import usage
from .context import Ctx, confirm, prompt_passphrase, wrong_passphrase
from .registry import arg, command
from .render import when


# -- onboarding -------------------------------------------------------------------------------
@command("org keygen", "create the organisation root key (focal point)")
async def org_keygen(ctx: Ctx) -> None:
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
    arg("--code", help="the one-time enrolment code (the focal point's first one comes from the "
        "instance admin; with --root-profile of an enrolled focal point, none is needed)"),
    arg("--new-root", action="store_true",
        help="focal point's first enrolment: create the organisation root key in this profile "
        "(as `opseal org keygen`) and register it"),
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
    a = ctx.args
    _require(ctx, "server", "org", "user", "device")
    if ctx.profile.exists:
        raise usage(
            f"profile {ctx.profile.name!r} is already enrolled",
            "use another --profile for another device",
        )
    if a.ca_bundle and not Path(a.ca_bundle).is_file():
        raise usage(
            f"--ca-bundle {a.ca_bundle}: no such file", "give a PEM file of CA certificates"
        )
    if not a.code and not (
        a.root_profile and Profile(a.root_profile, ctx.profile.path.parent).exists
    ):
        raise usage(
            "missing --code",
            "a focal point's first enrolment needs the instance admin's code; later ones take "
            "--root-profile of the enrolled focal point or a code from `opseal org enrol-code`",
        )
    if a.new_root and a.root_profile:
        raise usage(
            "--new-root makes a root in this profile; --root-profile uses another's",
            "give one of them",
        )
    if a.new_root:
        root, holder_passphrase = _new_root(ctx), ctx.passphrase()
    else:
        root, holder_passphrase = _unlock_root(ctx, a.root_profile)
    code = a.code.strip() if a.code else await _code_from_focal_point(ctx, root, holder_passphrase)
    client = await Client.enrol(
        ctx.profile,
        server=a.server,
        code=code,
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


def _new_root(ctx: Ctx) -> SigningKey:
    """The organisation root for a focal point's first enrolment, saved before it is
    registered: a root registered but lost would lock the organisation out."""
    if ctx.profile.has_key("org-root"):
        raise usage(
            f"profile {ctx.profile.name!r} already holds an organisation root key",
            "run the same command without --new-root to enrol with it",
        )
    root = SigningKey.generate()
    ctx.profile.save_root(root, ctx.passphrase(new=True), ctx.kdf_params)
    ctx.out.note(f"Organisation root key created in {ctx.profile.path}: fingerprint "
                 f"{root.verify_key.fingerprint} (put it on the nomination letter)")  # fmt: skip
    return root


async def _code_from_focal_point(ctx: Ctx, root: SigningKey, passphrase: str) -> str:
    """A one-time code issued by the enrolled focal point's own device (``--root-profile``),
    opened with the passphrase that opened its root."""
    holder = Profile(ctx.args.root_profile, ctx.profile.path.parent)
    try:
        client = await Client.open(holder, passphrase)
    except WrongPassphrase as exc:
        raise wrong_passphrase(holder) from exc
    try:
        code, _ = await enrolment.issue_code(
            client.api, client.info.instance_id, client.org_id, root, client.now(), ttl=600
        )
    finally:
        await client.close()
    return code


@command(
    "org enrol-code",
    "issue a one-time enrolment code for your organisation (focal point)",
    arg("--ttl-hours", type=int, default=168, help="how long the code stays valid (max 720)"),
    arg("--root-profile", metavar="NAME", help="profile holding the org root (default: this one)"),
)
async def org_enrol_code(ctx: Ctx) -> None:
    if not 1 <= ctx.args.ttl_hours <= 720:
        raise usage(f"--ttl-hours {ctx.args.ttl_hours}: out of range", "give 1 to 720 hours")
    root = _load_root(ctx, ctx.args.root_profile)
    async with ctx.client() as client:
        code, expires_at = await enrolment.issue_code(
            client.api, client.info.instance_id, client.org_id, root, client.now(),
            ttl=ctx.args.ttl_hours * 3600,
        )  # fmt: skip
    ctx.out.result(
        {"org_id": client.org_id, "code": code, "expires_at": expires_at},
        [
            code,
            f"One-time enrolment code for {client.org_id}, valid until {when(expires_at)}.",
            "Give it only to the person who enrols with it (`opseal enrol --code ...`).",
        ],
    )


def _load_root(ctx: Ctx, root_profile: str | None) -> SigningKey:
    return _unlock_root(ctx, root_profile)[0]


def _unlock_root(ctx: Ctx, root_profile: str | None) -> tuple[SigningKey, str]:
    """The organisation root and the passphrase that opened its profile."""
    holder = Profile(root_profile, ctx.profile.path.parent) if root_profile else ctx.profile
    if not holder.has_key("org-root"):
        raise usage(
            f"profile {holder.name!r} holds no organisation root key",
            "run `opseal org keygen` in it first (or give --root-profile)",
        )
    try:
        # a device enrolled from another profile's root gets a passphrase of its own: confirm it
        passphrase = ctx.passphrase(new=holder is not ctx.profile)
        return holder.load_root(passphrase), passphrase
    except WrongPassphrase as exc:
        if holder is ctx.profile or not sys.stdin.isatty():
            raise wrong_passphrase(holder) from exc
    try:
        passphrase = prompt_passphrase(holder.name, new=False)
        return holder.load_root(passphrase), passphrase
    except WrongPassphrase as exc:
        raise wrong_passphrase(holder) from exc


@command("whoami", "show this device's organisation, user, device and server")
async def whoami(ctx: Ctx) -> None:
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
