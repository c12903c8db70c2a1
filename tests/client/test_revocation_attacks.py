"""Attacks on revocation by a hostile server, a hostile member or a stranger (review of issue 9).

Each test plays one attack found in review against the real server on loopback and checks
that it fails.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import time

import pytest

from opseal.client.verifier import IntegrityWarning

from .conftest import PASSPHRASE, enrol_client
from .malicious import attacker  # noqa: F401 (fixture)
from .test_malicious import kinds, members
from .test_revocation import enrol_and_join


async def test_new_joiner_refuses_a_charter_signed_by_a_revoked_coordinator_key(server, attacker):
    """A device joining after a coordinator key was revoked refuses a charter version the
    server stored although that key signed it, even though it holds no charter yet."""
    op, onboarded = attacker.op, attacker.onboarded
    deputy = await enrol_client(
        server, onboarded.home, "wco", "wco-deputy", "wco-deputy-device", onboarded.roots["wco"]
    )
    onboarded.clients["wco-deputy-device"] = deputy
    deputy_key, deputy_cert = deputy.profile.load_user(PASSPHRASE)
    assert deputy_cert is not None
    (wco,) = members(attacker, "wco")
    await wco.revoke(onboarded.roots["wco"], deputy_cert, "left the secretariat")
    current = await wco.charter(op)
    forged = current.next_version(issued_at=int(time.time()), name="Operation STOP V (taken)")
    await attacker.db.add_charter_version(forged.signed(deputy_key, deputy_cert))

    with pytest.raises(IntegrityWarning, match="revoked"):
        await enrol_and_join(server, onboarded, "fr-customs", "fr-officer-2", "fr-laptop-2")
    joiner = onboarded.clients["fr-laptop-2"]
    assert ("", "charter-refused") in kinds(joiner)
