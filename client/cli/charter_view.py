"""How the CLI shows a charter and its members: the verified view every member compares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opseal.crypto.encoding import b64e

from .context import Ctx
from .render import table, when

if TYPE_CHECKING:  # the crypto core loads when a command runs, so `opseal --help` stays fast
    from opseal.crypto.charter import Charter, Member

__all__ = ["charter_json", "charter_text", "show_members"]


def show_members(ctx: Ctx, members: list[Member]) -> None:
    ctx.out.note("Member organisations and their root key fingerprints — check each one:")
    for m in members:
        ctx.out.note(f"  {m.organisation_id:<20} {m.role:<12} {m.fingerprint}")
    for m in members:
        if m.role == "customs" and not m.reporting_codes:
            ctx.out.warn(
                f"{m.organisation_id} reports for no country: its seizure records will not "
                f"count; give --member {m.organisation_id}:{m.role}:CC to let it report for CC"
            )


def charter_json(c: Charter) -> dict[str, Any]:
    return {
        "operation_id": c.operation_id,
        "code": c.code,
        "name": c.name,
        "version": c.version,
        "starts_at": c.starts_at,
        "ends_at": c.ends_at,
        "issued_at": c.issued_at,
        "signed_by": None if c.signer is None else f"{c.signer.user_id}@{c.signer.organisation_id}",
        "members": [
            {"org_id": m.organisation_id, "name": m.name, "kind": m.kind, "role": m.role,
             "reporting_codes": list(m.reporting_codes), "root_key": b64e(m.root_key.raw),
             "fingerprint": m.fingerprint}
            for m in c.members
        ],
        "areas": [
            {"area": a.name, "read": sorted(a.read_roles), "post": sorted(a.post_roles),
             "history": a.history, "rotation_period_s": a.rotation_period,
             "history_window_s": a.history_window}
            for a in c.areas
        ],
    }  # fmt: skip


def charter_text(c: Charter) -> list[str]:
    data = charter_json(c)
    members = [
        (m["org_id"], m["role"], ",".join(m["reporting_codes"]) or "-", m["fingerprint"], m["name"])
        for m in data["members"]
    ]
    areas = [(a["area"], ",".join(a["read"]), ",".join(a["post"]), a["history"],
              a["rotation_period_s"], "all" if a["history_window_s"] is None
              else a["history_window_s"]) for a in data["areas"]]  # fmt: skip
    return [
        f"{c.code} — {c.name} ({c.operation_id}), charter v{c.version} (verified)",
        f"  {when(c.starts_at)} to {when(c.ends_at)}; signed by {data['signed_by']} "
        f"at {when(c.issued_at)}",
        *table(members, ("ORGANISATION", "ROLE", "REPORTS FOR", "ROOT FINGERPRINT", "NAME")),
        *table(areas, ("AREA", "READ", "POST", "HISTORY", "ROTATION S", "KEEPS SECRETS S")),
    ]
