"""The admission part: user certificates (pure), and joining and admitting on the real server."""

from __future__ import annotations

from opseal.client.admission import YEAR, certify_user_key
from opseal.crypto.keys import SigningKey

from .conftest import enrol_client


def test_a_user_key_is_certified_for_a_year_with_a_minute_of_skew():
    """The organisation root certifies a user's key from a minute ago until a year from now."""
    root, user = SigningKey.generate(), SigningKey.generate()
    cert = certify_user_key(root, "fr-customs", "fr-user", "person", "", user.verify_key, 1000)
    assert (cert.issued_at, cert.expires_at) == (940, 1000 + YEAR)
    assert cert.name == "fr-user"
    assert cert.signing_key.raw == user.verify_key.raw


async def test_a_new_device_joins_and_the_coordinator_admits_it(server, onboarded):
    """A second German device asks to join; one admission round lets it read every area."""
    wco, op = onboarded.clients["wco"], onboarded.operation_id
    laptop = await enrol_client(
        server,
        onboarded.home,
        "de-customs",
        "de-user-2",
        "de-laptop",
        onboarded.roots["de-customs"],
    )
    onboarded.clients["de-laptop"] = laptop  # closed by the fixture
    areas = await laptop.admission.join(op, onboarded.roots["wco"].verify_key.key_id)
    assert areas == ["plan", "seizures", "stakeholders"]
    assert sorted(await wco.admission.admit(op)) == ["de-laptop"] * 3
    assert await wco.admission.admit(op) == []
    await laptop.verifier.sync()
    for area in areas:
        state, _ = laptop.verifier.current(op, area)
        assert state.member("de-laptop") is not None
