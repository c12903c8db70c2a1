"""Passphrase strength for key files (issue 12): longer for organisation roots."""

from __future__ import annotations

import pytest

from opseal.client.client import Client
from opseal.client.profile import MIN_PASSPHRASE, Profile, ProfileError
from opseal.crypto.keys import SigningKey
from opseal.server.services import instance as admin

from .conftest import FAST, PASSPHRASE


@pytest.mark.parametrize(("purpose", "least"), [("org-root", 16), ("device", 12), ("user", 12)])
def test_a_key_file_needs_a_passphrase_of_its_minimum_length(tmp_path, purpose, least):
    """One character short is refused with the rule named and nothing written; the minimum
    itself is accepted."""
    assert MIN_PASSPHRASE[purpose] == least
    profile = Profile("p", tmp_path)
    with pytest.raises(ProfileError, match=f"at least {least} characters") as refused:
        profile.save_key(purpose, {"seed": "x"}, "s" * (least - 1), FAST)
    assert "s" * (least - 1) not in str(refused.value)
    assert not profile.has_key(purpose)
    profile.save_key(purpose, {"seed": "x"}, "s" * least, FAST)
    assert profile.load_key(purpose, "s" * least) == {"seed": "x"}


def test_an_organisation_root_refuses_a_device_length_passphrase(tmp_path):
    """Twelve characters seal a device key but not an organisation root."""
    with pytest.raises(ProfileError, match="organisation root key"):
        Profile("fp", tmp_path).save_root(SigningKey.generate(), "twelve chars", FAST)


async def test_a_weak_passphrase_is_refused_before_the_enrolment_code_is_spent(server, tmp_path):
    """Enrolment with a short passphrase fails before contacting the server, so the same
    code still enrols the device with a good passphrase."""
    await admin.create_organisation(
        server.ctx, "fr-customs", "French Customs", "customs-administration"
    )
    code = await admin.create_enrolment_code(server.ctx, "fr-customs")
    root = SigningKey.generate()
    kwargs = dict(server=server.url, code=code, root=root, org_id="fr-customs", user_id="u",
                  device_id="d", allow_http=True, params=FAST)  # fmt: skip
    with pytest.raises(ProfileError, match="at least 12 characters"):
        await Client.enrol(Profile("d", tmp_path), passphrase="short", **kwargs)
    client = await Client.enrol(Profile("d", tmp_path), passphrase=PASSPHRASE, **kwargs)
    assert client.device_id == "d"
    await client.close()
