"""A small world of organisations, users, devices and a charter for crypto-core tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from opseal.crypto.certs import issue_user_certificate
from opseal.crypto.charter import AreaPolicy, Charter, Member
from opseal.crypto.group import DeviceIdentity
from opseal.crypto.keys import SigningKey

NOW = 1_780_000_000
YEAR = 365 * 24 * 3600
INSTANCE = "opseal-test"

ORGS = {
    "wco": ("World Customs Organization", "secretariat", "coordinator"),
    "fr-customs": ("French Customs", "customs-administration", "customs"),
    "de-customs": ("German Customs", "customs-administration", "customs"),
    "interpol": ("INTERPOL", "partner-agency", "partner"),
    "brandx": ("Brand X Rights Holder", "rights-holder", "stakeholder"),
    "auditor-org": ("Audit Office", "observer", "observer"),
}

AREAS = (
    AreaPolicy("plan", frozenset({"coordinator", "customs"}), frozenset({"coordinator"}), "shared"),
    AreaPolicy(
        "seizures",
        frozenset({"coordinator", "customs", "partner"}),
        frozenset({"coordinator", "customs", "partner"}),
        "since-join",
    ),
    AreaPolicy(
        "stakeholders",
        frozenset({"coordinator", "customs", "stakeholder", "observer"}),
        frozenset({"coordinator", "stakeholder"}),
        "shared",
    ),
)


@dataclass
class User:
    key: SigningKey
    cert: object


@dataclass
class World:
    """Organisation roots, users and devices, and a signed charter version 1."""

    now: int = NOW
    roots: dict[str, SigningKey] = field(default_factory=dict)
    users: dict[tuple[str, str], User] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.roots = {org: SigningKey.generate() for org in (*ORGS, "outsider")}
        self.charter = self.make_charter()

    def user(self, org: str, user_id: str, kind: str = "person") -> User:
        if (org, user_id) not in self.users:
            key = SigningKey.generate()
            cert = issue_user_certificate(
                self.roots[org], organisation_id=org, user_id=user_id, user_kind=kind,
                name=user_id, identity_key=key.verify_key, issued_at=self.now - 10,
                expires_at=self.now + YEAR,
            )  # fmt: skip
            self.users[(org, user_id)] = User(key, cert)
        return self.users[(org, user_id)]

    def device(
        self, org: str, user_id: str, device_id: str, kind: str = "person"
    ) -> DeviceIdentity:
        user = self.user(org, user_id, kind)
        return DeviceIdentity.generate(
            user.key, user.cert, device_id=device_id, name=device_id,
            issued_at=self.now - 10, expires_at=self.now + YEAR,
        )  # fmt: skip

    def members(self) -> list[Member]:
        return [
            Member(org, name, kind, role, self.roots[org].verify_key)
            for org, (name, kind, role) in ORGS.items()
        ]

    def make_charter(self) -> Charter:
        coordinator = self.user("wco", "ocu-lead")
        draft = Charter.create(
            operation_id="op-stop-v", code="STOP V", name="Operation STOP V",
            starts_at=self.now, ends_at=self.now + 30 * 86400, members=self.members(),
            areas=AREAS, issued_at=self.now - 5,
        )  # fmt: skip
        return draft.signed(coordinator.key, coordinator.cert)


@pytest.fixture
def world() -> World:
    """A fresh world: six organisations and a signed charter for 'STOP V'."""
    return World()
