"""Reporting codes of charter members: the second encoding, and charters written before it;
areas' rotation periods: the third encoding."""

from __future__ import annotations

from dataclasses import replace

import pytest

from opseal.crypto.charter import (
    DEFAULT_ROTATION_PERIOD,
    DEFAULT_SINCE_JOIN_WINDOW,
    Charter,
    Member,
    verify_charter_chain,
)
from opseal.crypto.encoding import length_prefixed
from opseal.crypto.errors import CharterError, DecodeError

from .conftest import NOW


def _with_codes(world, codes: dict[str, tuple[str, ...]]) -> list[Member]:
    return [replace(m, reporting_codes=codes.get(m.organisation_id, ())) for m in world.members()]


def _signed(world, draft: Charter) -> Charter:
    lead = world.user("wco", "ocu-lead")
    return draft.signed(lead.key, lead.cert)


def _pin(world) -> bytes:
    return world.roots["wco"].verify_key.key_id


def test_reporting_codes_are_signed_and_round_trip(world):
    """A member's reporting codes survive encoding, and changing one breaks the signature."""
    charter = _signed(
        world,
        replace(world.charter, members=tuple(_with_codes(world, {"fr-customs": ("FR", "GP")}))),
    )
    again = Charter.from_bytes(charter.to_bytes())
    assert again == charter
    assert again.member("fr-customs").reporting_codes == ("FR", "GP")
    assert again.member("fr-customs").reports_for("GP")
    assert not again.member("de-customs").reports_for("FR")
    forged = charter.to_bytes().replace(b"\x00\x00\x00\x02FR", b"\x00\x00\x00\x02DE")
    with pytest.raises(CharterError, match="does not verify"):
        verify_charter_chain([Charter.from_bytes(forged)], pinned_root_key_id=_pin(world), now=NOW)


def test_reporting_codes_are_normalised_and_checked_at_construction(world):
    """Codes are kept sorted and unique; anything but two capital letters is refused."""
    key = world.roots["fr-customs"].verify_key
    assert Member("fr", "F", "customs", "customs", key, ("GP", "FR", "FR")).reporting_codes == (
        "FR",
        "GP",
    )
    for bad in (("fr",), ("FRA",), ("F1",), "FR"):
        with pytest.raises(DecodeError, match="reporting code"):
            Member("fr", "F", "customs", "customs", key, bad)


def test_unsorted_reporting_codes_in_an_encoding_are_refused(world):
    """A decoder accepts only the one canonical order of codes."""
    members = _with_codes(world, {"fr-customs": ("FR", "GP")})
    charter = _signed(world, replace(world.charter, members=tuple(members)))
    swapped = charter.to_bytes().replace(
        b"\x00\x00\x00\x02FR\x00\x00\x00\x02GP", b"\x00\x00\x00\x02GP\x00\x00\x00\x02FR"
    )
    with pytest.raises(DecodeError, match="sorted and unique"):
        Charter.from_bytes(swapped)


def test_a_charter_of_the_first_encoding_still_verifies_and_reports_for_nothing(world):
    """A version signed before reporting codes existed reads back byte for byte, its members
    report for no country, and the next version (second encoding) can give them codes."""
    legacy = _signed(world, replace(world.charter, encoding=1))
    data = legacy.to_bytes()
    assert data.startswith(length_prefixed(b"opseal/v1/charter"))
    old = Charter.from_bytes(data)
    assert old.encoding == 1
    assert old.to_bytes() == data
    assert old.hash == legacy.hash
    assert verify_charter_chain([old], pinned_root_key_id=_pin(world), now=NOW) == old
    assert all(m.reporting_codes == () for m in old.members)
    v2 = _signed(
        world,
        old.next_version(issued_at=NOW, members=_with_codes(world, {"fr-customs": ("FR",)})),
    )
    assert v2.encoding == 2
    chain = [old, Charter.from_bytes(v2.to_bytes())]
    latest = verify_charter_chain(chain, pinned_root_key_id=_pin(world), now=NOW)
    assert latest.member("fr-customs").reports_for("FR")


def test_the_first_encoding_cannot_carry_reporting_codes(world):
    """Codes given to a first-encoding version are refused rather than silently dropped."""
    with pytest.raises(DecodeError, match="first encoding"):
        replace(
            world.charter, encoding=1, members=tuple(_with_codes(world, {"fr-customs": ("FR",)}))
        )


def test_rotation_period_takes_the_third_encoding_only_when_an_area_sets_one(world):
    """A version whose areas set no rotation period keeps the second encoding (and reads the
    default period); one that sets a period is signed in the third, round-trips and verifies
    as a successor; a period out of range or in an older encoding is refused."""
    assert world.charter.encoding == 2
    assert world.charter.area("seizures").rotation_period == DEFAULT_ROTATION_PERIOD
    areas = [replace(a, rotation_period_s=7200) if a.name == "seizures" else a
             for a in world.charter.areas]  # fmt: skip
    draft = world.charter.next_version(issued_at=NOW, areas=areas)
    assert draft.encoding == 3
    second = _signed(world, draft)
    again = Charter.from_bytes(second.to_bytes())
    assert again == second
    assert again.to_bytes().startswith(length_prefixed(b"opseal/v1/charter/3"))
    assert again.area("seizures").rotation_period == 7200
    assert again.area("plan").rotation_period == DEFAULT_ROTATION_PERIOD
    verify_charter_chain([world.charter, again], pinned_root_key_id=_pin(world), now=NOW)
    assert world.charter.next_version(issued_at=NOW).encoding == 2
    with pytest.raises(DecodeError, match="rotation period"):
        replace(world.charter.areas[0], rotation_period_s=60)
    with pytest.raises(DecodeError, match="third encoding"):
        replace(world.charter, areas=tuple(areas))


def test_history_window_takes_the_fourth_encoding_only_when_an_area_sets_one(world):
    """Versions that set no window keep their encoding and bytes and read the history
    policy's default (shared: all, since-join: a week); one that sets a window is signed in
    the fourth encoding with the rotation period too, round-trips and verifies; a window out
    of range, in an older encoding, or altered after signing is refused."""
    plan, seizures = world.charter.area("plan"), world.charter.area("seizures")
    assert (plan.history, plan.history_window) == ("shared", None)
    assert (seizures.history, seizures.history_window) == ("since-join", DEFAULT_SINCE_JOIN_WINDOW)
    areas = [replace(a, history_window_s=2 * 86400) if a.name == "seizures" else a
             for a in world.charter.areas]  # fmt: skip
    draft = world.charter.next_version(issued_at=NOW, areas=areas)
    assert draft.encoding == 4
    second = _signed(world, draft)
    again = Charter.from_bytes(second.to_bytes())
    assert again == second
    assert again.to_bytes().startswith(length_prefixed(b"opseal/v1/charter/4"))
    assert again.area("seizures").history_window == 2 * 86400
    assert again.area("plan").history_window is None
    assert again.area("seizures").rotation_period == DEFAULT_ROTATION_PERIOD
    verify_charter_chain([world.charter, again], pinned_root_key_id=_pin(world), now=NOW)
    both = [replace(a, rotation_period_s=7200) for a in areas]
    third = Charter.from_bytes(_signed(world, world.charter.next_version(
        issued_at=NOW, areas=both)).to_bytes())  # fmt: skip
    assert (third.area("seizures").rotation_period, third.area("seizures").history_window) == (
        7200, 2 * 86400)  # fmt: skip
    # a server that lengthens the window in the signed bytes breaks the signature
    raw = second.to_bytes()
    at = raw.index((2 * 86400).to_bytes(8, "big"))
    tampered = Charter.from_bytes(raw[:at] + (30 * 86400).to_bytes(8, "big") + raw[at + 8 :])
    assert tampered.area("seizures").history_window == 30 * 86400
    with pytest.raises(CharterError):
        verify_charter_chain([world.charter, tampered], pinned_root_key_id=_pin(world), now=NOW)
    with pytest.raises(DecodeError, match="history window"):
        replace(world.charter.areas[0], history_window_s=60)
    with pytest.raises(DecodeError, match="fourth encoding"):
        replace(world.charter, areas=tuple(areas), encoding=3)
