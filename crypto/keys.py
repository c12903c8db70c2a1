"""Keys: Ed25519 signing keys, hybrid post-quantum HPKE keys, fingerprints, key files.

HPKE uses the suite of design §3: ``KEM.MLKEM768_X25519`` / ``KDF.HKDF_SHA256`` /
``AEAD.AES_256_GCM``. A private HPKE key is stored as the 64-byte ML-KEM seed followed by
the 32-byte X25519 scalar; a public one as the 1184-byte ML-KEM key followed by the 32-byte
X25519 key.

Private keys never appear in a ``repr`` or an error message. On disk they are sealed under a
passphrase: Argon2id derives an AES-256-GCM key; the parameters and salt travel in the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .encoding import Reader, Writer, label, length_prefixed, sha256
from .errors import DecodeError, DecryptionError, SignatureError, WrongPassphrase

__all__ = [
    "HPKE_PUBLIC_KEY_SIZE",
    "HmacKey",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KdfParams",
    "SigningKey",
    "VerifyKey",
    "fingerprint_text",
    "hkdf_expand",
    "hkdf_extract",
    "hkdf_sha256",
    "open_key_file",
    "seal_key_file",
    "sodium_accepts",
]

_MLKEM_PUB = 1184
_X25519 = 32
HPKE_PUBLIC_KEY_SIZE = _MLKEM_PUB + _X25519
_HPKE_PRIVATE_SIZE = 64 + _X25519
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def fingerprint_text(digest: bytes) -> str:
    """Human-comparable form of a key digest: six groups of five digits (about 100 bits).

    As in Signal's safety numbers, each group is five bytes of the SHA-256 digest read as a
    big-endian integer modulo 100000, so two people can read it aloud to each other.
    """
    groups = [int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5)]
    return " ".join(f"{g:05d}" for g in groups)


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """HKDF-SHA256 (RFC 5869): cheap enough to run per message (HMAC written on hashlib, its
    padded keys hashed once for all the blocks: half the cost of ``hmac.digest`` per call)."""
    return hkdf_expand(hkdf_extract(ikm, salt), info, length)


def hkdf_extract(ikm: bytes, salt: bytes = b"") -> HmacKey:
    """HKDF's extract step: the pseudorandom key, ready to expand (:func:`hkdf_expand`)."""
    return HmacKey(_hmac_sha256(salt or bytes(32), ikm))


def hkdf_expand(prk: HmacKey, info: bytes, length: int) -> bytes:
    """HKDF's expand step: ``length`` bytes for ``info`` from an extracted key."""
    if length > 255 * 32:
        raise ValueError("HKDF output too long")
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = prk.digest(block + info + bytes([counter]))
        out += block
    return out[:length]


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after HMAC's inner and outer padded keys (RFC 2104)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


class HmacKey:
    """HMAC-SHA256 under one key, its padded key's states hashed once: for a key used on every
    request (the server's token hashes). It also keeps the interpreter lock, which
    ``hmac.digest`` lets go of: in a server whose database threads then take it, getting it
    back cost ~20 µs a call (design §13). Its repr never shows the key."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        self._inner, self._outer = _hmac_pads(key)

    def __repr__(self) -> str:
        return "HmacKey(...)"

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return HmacKey(key).digest(message)


class VerifyKey:
    """An Ed25519 public key; equal when the raw bytes are equal."""

    __slots__ = ("_key", "_key_id", "raw")

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise DecodeError("Ed25519 public key must be 32 bytes")
        self._key = _load_ed25519_public(raw)
        self.raw = raw
        self._key_id: bytes | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @property
    def key_id(self) -> bytes:
        """SHA-256 of the raw public key: how certificates name their issuer."""
        if self._key_id is None:  # asked for every message a sender's key checks
            self._key_id = sha256(self.raw)
        return self._key_id

    @property
    def fingerprint(self) -> str:
        """The key id as groups of digits, for out-of-band comparison."""
        return fingerprint_text(self.key_id)

    def verify(self, signature: bytes, message: bytes, *, what: str = "signature") -> None:
        """Raise :class:`SignatureError` unless ``signature`` signs ``message`` under this key.

        OpenSSL's verdict is the rule. libsodium, twice as fast here, is asked first: it
        checks the same equation with stricter inputs (canonical S and key, no small-order
        R or key), so what it accepts OpenSSL accepts; anything it refuses goes to OpenSSL.
        """
        if len(signature) == 64 and sodium_accepts(signature, message, self.raw):
            return
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise SignatureError(f"{what} does not verify") from exc

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint})"


def sodium_accepts(signature: bytes, message: bytes, public: bytes) -> bool:
    """Whether libsodium's Ed25519 verification accepts ``signature`` of ``message`` under the
    raw public key ``public``: if it does, :meth:`VerifyKey.verify` does; if not, only that
    method's verdict counts (it asks OpenSSL)."""
    try:
        _sodium_open()(signature + message, public)
    except Exception:  # libsodium's refusal: OpenSSL decides
        return False
    return True


@cache
def _sodium_open() -> Callable[[bytes, bytes], bytes]:
    # Loaded at the first verification, not for commands that never verify.
    from nacl.bindings import crypto_sign_open

    return crypto_sign_open


def _load_ed25519_public(raw: bytes) -> ed25519.Ed25519PublicKey:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise DecodeError("invalid Ed25519 public key") from exc


class SigningKey:
    """An Ed25519 private key. Its repr never shows the key."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise DecodeError("Ed25519 private key must be 32 bytes")
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        self.verify_key = VerifyKey(self._key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def private_bytes(self) -> bytes:
        """The 32-byte seed, for sealing into a key file. Handle with care."""
        return self._key.private_bytes_raw()

    def __repr__(self) -> str:
        return f"SigningKey(***, public={self.verify_key.fingerprint})"


class HpkePublicKey:
    """A hybrid ML-KEM-768 + X25519 HPKE public key."""

    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes) or len(raw) != HPKE_PUBLIC_KEY_SIZE:
            raise DecodeError(f"HPKE public key must be {HPKE_PUBLIC_KEY_SIZE} bytes")
        try:
            self._key = hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM_PUB]),
                x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM_PUB:]),
            )
        except ValueError as exc:
            raise DecodeError("invalid HPKE public key") from exc
        self.raw = raw

    @property
    def key_id(self) -> bytes:
        return sha256(self.raw)

    def seal(self, plaintext: bytes, info: bytes) -> bytes:
        """HPKE base-mode single-shot encryption; ``info`` binds the context."""
        return _SUITE.encrypt(plaintext, self._key, info=info)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HpkePublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"HpkePublicKey({fingerprint_text(self.key_id)})"


class HpkePrivateKey:
    """A hybrid ML-KEM-768 + X25519 HPKE private key. Its repr never shows the key."""

    __slots__ = ("_key", "_raw", "public_key")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _HPKE_PRIVATE_SIZE:
            raise DecodeError(f"HPKE private key must be {_HPKE_PRIVATE_SIZE} bytes")
        kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64])
        dh = x25519.X25519PrivateKey.from_private_bytes(raw[64:])
        self._key = hpke.MLKEM768X25519PrivateKey(kem, dh)
        self._raw = raw
        self.public_key = HpkePublicKey(
            kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> HpkePrivateKey:
        return cls(os.urandom(_HPKE_PRIVATE_SIZE))

    def open(self, ciphertext: bytes, info: bytes) -> bytes:
        """Open an HPKE ciphertext; :class:`DecryptionError` if it was not sealed to us."""
        try:
            return _SUITE.decrypt(ciphertext, self._key, info=info)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("HPKE ciphertext does not open with this key") from exc

    def private_bytes(self) -> bytes:
        """The seed bytes, for sealing into a key file. Handle with care."""
        return self._raw

    def __repr__(self) -> str:
        return f"HpkePrivateKey(***, public={fingerprint_text(self.public_key.key_id)})"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters stored in a key file."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1

    def check(self) -> None:
        if not 1 <= self.parallelism <= 16:
            raise DecodeError("key file: Argon2id parallelism out of range")
        if not (1 <= self.time_cost <= 64 and 8 * self.parallelism <= self.memory_kib <= 1 << 20):
            raise DecodeError("key file: Argon2id parameters out of range")


_KEYFILE = label("keyfile")


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    try:
        return _argon2id(passphrase, salt, params)
    except HashingError as exc:
        raise DecodeError(f"key file: Argon2id refused its parameters ({exc})") from exc


def _argon2id(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        passphrase.encode("utf-8"),
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def seal_key_file(
    secret: bytes, passphrase: str, *, purpose: str, params: KdfParams | None = None
) -> bytes:
    """Seal private key bytes under a passphrase. ``purpose`` (e.g. ``org-root``) is bound in."""
    if not passphrase:
        raise ValueError("a passphrase is required")
    params = params or KdfParams()
    params.check()
    salt, nonce = os.urandom(16), os.urandom(12)
    head = (
        Writer(_KEYFILE)
        .text(purpose)
        .u32(params.time_cost)
        .u32(params.memory_kib)
        .u32(params.parallelism)
        .blob(salt)
        .blob(nonce)
        .finish()
    )
    sealed = AESGCM(_derive(passphrase, salt, params)).encrypt(nonce, secret, head)
    return head + length_prefixed(sealed)


def open_key_file(blob: bytes, passphrase: str, *, purpose: str) -> bytes:
    """Open a key file sealed by :func:`seal_key_file`; :class:`WrongPassphrase` if it fails."""
    reader = Reader(blob, _KEYFILE, what="key file")
    found = reader.text(max_len=64, field="purpose")
    params = KdfParams(reader.u32("time_cost"), reader.u32("memory_kib"), reader.u32("parallelism"))
    salt = reader.blob(exact=16, field="salt")
    nonce = reader.blob(exact=12, field="nonce")
    head = reader.consumed()
    sealed = reader.blob(max_len=4096, field="sealed")
    reader.finish()
    if found != purpose:
        raise DecodeError(f"key file holds a {found!r} key, expected {purpose!r}")
    params.check()
    try:
        return AESGCM(_derive(passphrase, salt, params)).decrypt(nonce, sealed, head)
    except InvalidTag as exc:
        raise WrongPassphrase("the passphrase does not open this key file") from exc
