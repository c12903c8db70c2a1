"""Client fixtures: the real server on each backend, and real enrolled client profiles."""
# ruff: noqa: F811 -- fixtures imported from the server suite are parameters here

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace

import pytest

from opseal.client.client import Client
from opseal.client.profile import Profile
from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.keys import KdfParams, SigningKey
from opseal.server.services import instance as admin

from ..server.conftest import database_url, server, settings  # noqa: F401 (fixtures)

FAST = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)
PASSPHRASE = "correct horse battery staple"
ORGS = {
    "wco": ("World Customs Organization", "secretariat", "coordinator"),
    "fr-customs": ("French Customs", "customs-administration", "customs"),
    "de-customs": ("German Customs", "customs-administration", "customs"),
    "brandx": ("Brand X", "rights-holder", "stakeholder"),
}
REPORTING = {"fr-customs": ("FR",), "de-customs": ("DE",)}
"""The countries each organisation reports seizures for in the test charters."""
AREAS = (
    AreaPolicy("plan", frozenset({"coordinator", "customs"}), frozenset({"coordinator"}), "shared"),
    AreaPolicy(
        "seizures",
        frozenset({"coordinator", "customs"}),
        frozenset({"coordinator", "customs"}),
        "since-join",
    ),
    AreaPolicy(
        "stakeholders",
        frozenset({"coordinator", "customs", "stakeholder"}),
        frozenset({"coordinator", "stakeholder"}),
        "shared",
    ),
)


@dataclass
class Onboarded:
    """Enrolled clients per organisation, their roots, and the operation they share."""

    clients: dict[str, Client]
    roots: dict[str, SigningKey]
    operation_id: str
    home: object


async def enrol_client(
    server, home, org: str, user: str, device: str, root: SigningKey, kind: str = "person"
) -> Client:
    name, org_kind, role = ORGS[org]
    with contextlib.suppress(Exception):  # registered by an earlier enrolment
        await admin.create_organisation(
            server.ctx, org, name, org_kind, can_coordinate=role == "coordinator"
        )
    code = await admin.create_enrolment_code(server.ctx, org)
    return await Client.enrol(
        Profile(device, home),
        server=server.url,
        code=code,
        passphrase=PASSPHRASE,
        root=root,
        org_id=org,
        user_id=user,
        device_id=device,
        user_kind=kind,
        params=FAST,
    )


@pytest.fixture
async def onboarded(server, tmp_path):
    """Three administrations and a rights holder enrolled; the WCO publishes 'STOP V' and every
    member joins; the coordinator admits them all."""
    roots = {org: SigningKey.generate() for org in ORGS}
    clients = {
        org: await enrol_client(server, tmp_path, org, f"{org}-user", f"{org}-device", roots[org])
        for org in ORGS
    }
    coordinator = clients["wco"]
    draft = Charter.create(
        operation_id="op-stop-v",
        code="STOP V",
        name="Operation STOP V",
        starts_at=coordinator.now(),
        ends_at=coordinator.now() + 30 * 86400,
        members=[
            Member(org, n, k, r, roots[org].verify_key, REPORTING.get(org, ()))
            for org, (n, k, r) in ORGS.items()
        ],
        areas=AREAS,
        issued_at=coordinator.now() - 5,
    )
    user_key, _ = await asyncio.to_thread(coordinator.profile.load_user, PASSPHRASE)
    await coordinator.create_operation(draft, user_key)
    for org, client in clients.items():
        if org != "wco":
            await client.join("op-stop-v", roots["wco"].verify_key.key_id)
    await coordinator.admit()
    yield Onboarded(clients, roots, "op-stop-v", tmp_path)
    for client in clients.values():
        await client.close()


async def grant_reporting(onboarded: Onboarded, codes: dict[str, tuple[str, ...]]) -> None:
    """The coordinator publishes the next charter version with these reporting codes, once
    every member has taken the commits made under the current one."""
    for client in onboarded.clients.values():
        await client.sync()
    coordinator, op = onboarded.clients["wco"], onboarded.operation_id
    charter = await coordinator.charter(op, refresh=True)
    members = [
        replace(m, reporting_codes=codes.get(m.organisation_id, m.reporting_codes))
        for m in charter.members
    ]
    draft = charter.next_version(issued_at=coordinator.now() - 1, members=members)
    user_key, _ = await asyncio.to_thread(coordinator.profile.load_user, PASSPHRASE)
    signed = draft.signed(user_key, coordinator.identity.user_cert)
    await coordinator.api.publish_charter(op, signed.to_bytes())
    for client in onboarded.clients.values():
        await client.charter(op, refresh=True)
