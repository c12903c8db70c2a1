"""Focal points issue their own organisation's enrolment codes; the instance admin only creates
organisations (design §3, issue 13)."""

from __future__ import annotations

import hashlib
import time

import pytest

from opseal.client.enrolment import issue_code
from opseal.client.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InvalidSignatureError,
    NotFoundError,
    UnauthorizedError,
)
from opseal.crypto.statements import enrolment_code_message
from opseal.server.errors import Conflict
from opseal.server.services import instance as admin
from opseal.server.services import onboarding

from ..crypto.conftest import World
from .conftest import enrol


def _grant(instance_id: str, org: str, key, code: str, expires_at: int) -> tuple[bytes, bytes]:
    code_hash = hashlib.sha256(code.encode()).digest()
    return code_hash, key.sign(enrolment_code_message(instance_id, org, code_hash, expires_at))


async def test_a_focal_point_issues_codes_for_its_own_organisation_only(server):
    """A code granted by the organisation's root enrols a device of that organisation once;
    another organisation's device, a device without the root, a replayed or foreign grant, an
    expiry out of range, and the code used for another organisation are all refused and
    change nothing; the instance admin cannot issue codes once the focal point enrolled."""
    world, now = World(now=int(time.time())), int(time.time())
    instance_id = server.ctx.instance.instance_id
    fr = await enrol(server, world, "fr-customs", "focal", "fr-laptop")
    officer = await enrol(server, world, "fr-customs", "anna", "anna-laptop")
    de = await enrol(server, world, "de-customs", "focal", "de-laptop")
    root_fr, root_de = world.roots["fr-customs"], world.roots["de-customs"]

    code, expires_at = await issue_code(fr.api, instance_id, "fr-customs", root_fr, now)
    assert expires_at == now + 7 * 86400
    device = world.device("fr-customs", "ncen", "ncen-1", "service")
    certs = (device.user_cert.to_bytes(), device.device_cert.to_bytes(), root_fr.verify_key.raw)
    hostile_device = world.device("de-customs", "mole", "mole-1")
    # a code enrols into its own organisation only
    with pytest.raises((ConflictError, InvalidSignatureError)):
        await fr.api.enrol(
            code,
            hostile_device.user_cert.to_bytes(),
            hostile_device.device_cert.to_bytes(),
            root_de.verify_key.raw,
        )
    with pytest.raises(NotFoundError):
        await fr.api.device("mole-1")
    assert (await fr.api.enrol(code, *certs)).device_id == "ncen-1"  # still unused, then used
    with pytest.raises(UnauthorizedError, match="unknown, used or expired"):
        await fr.api.enrol(code, *certs)

    refusals = [  # (who asks, for which org, signed by, expiry, error)
        (de, "fr-customs", root_de, now + 60, ForbiddenError),  # another organisation
        (de, "fr-customs", root_fr, now + 60, ForbiddenError),  # even with a stolen grant
        (officer, "fr-customs", officer.identity.signing_key, now + 60, InvalidSignatureError),
        (fr, "fr-customs", root_de, now + 60, InvalidSignatureError),  # not its root
        (fr, "fr-customs", root_fr, now + 31 * 86400, BadRequestError),  # beyond 30 days
        (fr, "fr-customs", root_fr, now - 1, BadRequestError),  # already expired
    ]
    for i, (who, org, key, expiry, error) in enumerate(refusals):
        code_hash, signature = _grant(instance_id, org, key, f"code-{i}", expiry)
        with pytest.raises(error):
            await who.api.issue_enrolment_code(org, code_hash, expiry, signature)
    code_hash, signature = _grant("opseal-other", "fr-customs", root_fr, "elsewhere", now + 60)
    with pytest.raises(InvalidSignatureError):  # a grant made for another instance
        await fr.api.issue_enrolment_code("fr-customs", code_hash, now + 60, signature)
    code_hash, signature = _grant(instance_id, "fr-customs", root_fr, "once", now + 60)
    await fr.api.issue_enrolment_code("fr-customs", code_hash, now + 60, signature)
    with pytest.raises(ConflictError):  # a replayed grant mints nothing new
        await fr.api.issue_enrolment_code("fr-customs", code_hash, now + 60, signature)
    for i in range(len(refusals)):  # none of the refused codes was stored
        with pytest.raises(UnauthorizedError, match="unknown, used or expired"):
            await fr.api.enrol(f"code-{i}", *certs)

    with pytest.raises(Conflict, match="its focal point issues"):
        await admin.first_enrolment_code(server.ctx, "fr-customs")
    await admin.create_organisation(server.ctx, "es-customs", "Spanish Customs", "customs")
    assert await admin.first_enrolment_code(server.ctx, "es-customs")
    listed = {o["org_id"]: o for o in await onboarding.organisations(server.ctx)}
    assert listed["fr-customs"]["fingerprint"] == root_fr.verify_key.fingerprint
    assert listed["es-customs"]["enrolled"] is False
