"""Commands: onboarding (``org keygen``, ``enrol``, ``whoami``)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import WrongPassphrase
from opseal.crypto.keys import SigningKey, VerifyKey

from ..client import Client
from ..profile import Profile
from .codes import usage
from .context import Ctx, prompt_passphrase, wrong_passphrase
from .registry import arg, command


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
    "enrol this device with a one-time code (after `org keygen`)",
    arg("--server", required=True, metavar="URL", help="the instance, e.g. https://opseal.example"),
    arg("--code", required=True, help="the one-time enrolment code from the instance admin"),
    arg("--org", required=True, help="your organisation id"),
    arg("--user", required=True, help="your user id"),
    arg("--device", required=True, help="a name for this device (unique on the instance)"),
    arg("--kind", choices=("person", "service"), default="person", help="person or service"),
    arg("--name", default="", help="display name of the user"),
    arg("--root-profile", metavar="NAME", help="profile holding the org root (default: this one)"),
    arg("--ca-bundle", metavar="FILE", default="", help="CA certificates to trust for TLS"),
    arg("--allow-http", action="store_true", help="allow plain http to a non-loopback server"),
)
async def enrol(ctx: Ctx) -> None:
    a = ctx.args
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
