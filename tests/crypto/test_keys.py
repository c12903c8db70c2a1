"""Keys: signing, HPKE, fingerprints and passphrase-sealed key files."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opseal.crypto.errors import DecodeError, DecryptionError, SignatureError, WrongPassphrase
from opseal.crypto.keys import (
    HmacKey,
    HpkePrivateKey,
    KdfParams,
    SigningKey,
    VerifyKey,
    fingerprint_text,
    hkdf_sha256,
    open_key_file,
    seal_key_file,
)

FAST = KdfParams(time_cost=1, memory_kib=64, parallelism=1)


def test_signature_verifies_only_for_its_message_and_key():
    """A signature verifies under its key and fails for another message or key."""
    key = SigningKey.generate()
    sig = key.sign(b"opseal/v1/test hello")
    key.verify_key.verify(sig, b"opseal/v1/test hello")
    with pytest.raises(SignatureError):
        key.verify_key.verify(sig, b"opseal/v1/test hellO")
    with pytest.raises(SignatureError):
        SigningKey.generate().verify_key.verify(sig, b"opseal/v1/test hello")


def test_signature_verdict_is_openssls_where_libsodium_is_stricter():
    """libsodium is asked first, but refuses what OpenSSL (the rule) accepts: the identity
    point as key and as R with S = 0 verifies under OpenSSL for any message, so it does here
    too (the verdict does not depend on the fast path); a one-bit change is still refused."""
    identity = bytes([1]) + bytes(31)
    signature = identity + bytes(32)
    VerifyKey(identity).verify(signature, b"any message")
    with pytest.raises(SignatureError):
        VerifyKey(identity).verify(bytes([3]) + signature[1:], b"any message")


def test_hpke_opens_only_with_the_same_info_and_key():
    """HPKE ciphertexts are bound to their recipient and their info string."""
    key = HpkePrivateKey.generate()
    sealed = key.public_key.seal(b"epoch secret", b"info-a")
    assert key.open(sealed, b"info-a") == b"epoch secret"
    with pytest.raises(DecryptionError):
        key.open(sealed, b"info-b")
    with pytest.raises(DecryptionError):
        HpkePrivateKey.generate().open(sealed, b"info-a")


def test_keys_reload_from_their_bytes():
    """Private keys reload from their stored bytes to the same public keys."""
    key, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    assert SigningKey(key.private_bytes()).verify_key == key.verify_key
    assert HpkePrivateKey(hpke.private_bytes()).public_key == hpke.public_key


def test_fingerprint_is_stable_and_human_comparable():
    """The same public key always shows as the same six groups of five digits."""
    key = VerifyKey(bytes(range(32)))
    assert key.fingerprint == fingerprint_text(key.key_id)
    assert key.fingerprint == "11590 49842 13307 78876 30539 70167"
    assert VerifyKey(bytes(range(32))).fingerprint == key.fingerprint


def test_private_keys_never_show_in_repr():
    """Neither repr nor str of a private key contains its bytes."""
    key, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    for obj, secret in ((key, key.private_bytes()), (hpke, hpke.private_bytes())):
        text = repr(obj) + str(obj)
        assert "***" in text
        assert secret.hex() not in text
        assert secret.hex()[:16] not in text


def test_key_file_opens_with_its_passphrase_only():
    """A sealed key file opens with the right passphrase and purpose, and not otherwise."""
    secret = SigningKey.generate().private_bytes()
    blob = seal_key_file(secret, "correct horse", purpose="org-root", params=FAST)
    assert secret not in blob
    assert open_key_file(blob, "correct horse", purpose="org-root") == secret
    with pytest.raises(WrongPassphrase):
        open_key_file(blob, "wrong horse", purpose="org-root")
    with pytest.raises(DecodeError, match="holds a 'org-root' key"):
        open_key_file(blob, "correct horse", purpose="device")


def test_key_file_tampering_is_detected():
    """A key file whose Argon2 parameters or salt were changed does not open."""
    blob = bytearray(seal_key_file(b"k" * 32, "pw", purpose="device", params=FAST))
    blob[-40] ^= 1
    with pytest.raises(WrongPassphrase):
        open_key_file(bytes(blob), "pw", purpose="device")


def test_hkdf_matches_the_cryptography_implementation():
    """The fast standard-library HKDF gives the same bytes as cryptography's HKDF."""
    for length in (16, 32, 44, 100):
        expected = HKDF(SHA256(), length, None, b"info").derive(b"ikm" * 11)
        assert hkdf_sha256(b"ikm" * 11, b"info", length) == expected


@pytest.mark.parametrize("salt", [b"s", bytes(range(64)), bytes(range(65)), bytes(200)])
def test_hkdf_with_a_salt_matches_the_cryptography_implementation(salt):
    """Salts shorter than, as long as and longer than SHA-256's block give cryptography's
    bytes too (a salt over 64 bytes is hashed first, as HMAC does with a long key)."""
    expected = HKDF(SHA256(), 80, salt, b"info").derive(b"key material")
    assert hkdf_sha256(b"key material", b"info", 80, salt) == expected


@pytest.mark.parametrize("key_size", [0, 32, 64, 65, 200])
def test_hmac_key_matches_the_standard_library(key_size):
    """The server hashes bearer tokens with it: any key length (RFC 2104 hashes keys longer
    than a block), any message, and its repr never shows the key."""
    key = bytes(range(256))[:key_size]
    for message in (b"", b"token", bytes(1000)):
        assert HmacKey(key).digest(message) == hmac.digest(key, message, "sha256")
    assert HmacKey(key).digest(b"a") != HmacKey(key + b"x").digest(b"a")
    assert repr(HmacKey(key)) == "HmacKey(...)"
