"""Invitations as one block (``op create``, ``op add-member``, ``op join --invitation``) and
focal-point enrolment codes, through the CLI in-process against the real server (issue 13)."""

from __future__ import annotations

import asyncio

import pytest

from opseal.client.invitation import BEGIN, Invitation

from .test_cli import onboard, opseal  # noqa: F401 (fixture)

OP = "op-x"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_invitation_block_is_checked_before_anything_is_pinned(opseal, server, tmp_path):  # noqa: F811
    """`op create` and `op add-member` print (and write) the invitation block; `op join
    --invitation` refuses a block whose key does not give its fingerprint, one for another
    instance, and a fingerprint heard by phone that differs — pinning nothing — then joins
    from the file or from the pasted, quoted e-mail; a focal point's own code enrols a device."""
    wco = await onboard(opseal, server, "wco", "wco", coordinator=True)
    await onboard(opseal, server, "fr-customs", "fr")
    de = await onboard(opseal, server, "de-customs", "de")
    created = await opseal("wco", "op", "create", "--id", OP, "--code", "X", "--name", "Op X",
                           "--start", "2025-05-12", "--end", "2099-05-30",
                           "--member", "fr-customs:customs:FR", "--out", str(tmp_path / "inv"),
                           "--yes")  # fmt: skip
    assert created.code == 0, created.err
    block = await asyncio.to_thread((tmp_path / "inv").read_text)
    assert block in created.out + "\n"
    assert block.startswith(BEGIN)
    invitation = Invitation.parse(block)
    assert (invitation.operation_id, invitation.coordinator) == (OP, "wco")
    assert (invitation.fingerprint, invitation.server) == (wco["fingerprint"], server.url)

    def variant(old: str, new: str) -> str:
        return block.replace(old, new)

    bad = {
        "tampered": (variant(wco["root_key"], de["root_key"]), [], 2, "does not match"),
        "other instance": (variant(invitation.instance_id, "opseal-elsewhere"), [], 1,
                           "for instance opseal-elsewhere"),
        "wrong digits": (block, ["--fingerprint", "12345 " * 6], 1, "not 12345"),
    }  # fmt: skip
    for text, extra, code, message in bad.values():
        refused = await opseal("fr", "op", "join", "--invitation", text, *extra)
        assert (refused.code, message in refused.err) == (code, True), refused.err
    listed = await opseal("fr", "--json", "op", "list")
    assert [o["joined"] for o in listed.json["operations"]] == [False]

    joined = await opseal("fr", "--json", "op", "join", "--invitation", str(tmp_path / "inv"),
                          "--fingerprint", wco["fingerprint"].replace(" ", ""))  # fmt: skip
    assert joined.code == 0, joined.err
    assert joined.json["role"] == "customs"

    added = await opseal("wco", "--json", "op", "add-member", OP, "de-customs:customs:DE",
                         "--yes")  # fmt: skip
    assert added.code == 0, added.err
    assert "member: de-customs (customs)" in added.json["invitation"]
    assert added.json["version"] == 2
    again = await opseal("wco", "op", "add-member", OP, "de-customs:customs", "--yes")
    assert (again.code, "already a member" in again.err) == (2, True)
    email = "Dear colleague,\n" + "".join(
        f"> {line}\n" for line in added.json["invitation"].splitlines()
    )
    de_joined = await opseal("de", "--json", "op", "join", "--invitation", email)
    assert de_joined.code == 0, de_joined.err
    assert de_joined.json["role"] == "customs"

    issued = await opseal("de", "--json", "org", "enrol-code", "--ttl-hours", "1")
    assert issued.code == 0, issued.err
    enrolled = await opseal("de-2", "enrol", "--server", server.url, "--code",
                            issued.json["code"], "--root-profile", "de", "--org", "de-customs",
                            "--user", "de-2", "--device", "de-laptop-2")  # fmt: skip
    assert enrolled.code == 0, enrolled.err
