"""The one exception family of :mod:`opseal.crypto`.

Every failure of the crypto core is a :class:`CryptoError`; callers catch that one
class, or a subclass when they react differently. No message ever carries key
material, secrets or plaintext: messages name the field or the rule that failed.

    CryptoError
    ├── DecodeError            malformed bytes (length, trailing data, bad field)
    │   └── UnsupportedVersion a label or version this code does not know
    ├── SignatureError         a signature does not verify
    ├── DecryptionError        an AEAD or HPKE open failed (wrong key, tampered data)
    │   └── WrongPassphrase    a key file could not be opened with this passphrase
    ├── CertificateError       certificate chains, expiry, revocation
    ├── CharterError           charter versions and their signature rules
    ├── PolicyError            an action the charter does not allow
    ├── CommitError            a group commit fails validation
    │   └── EpochError         a commit or message for the wrong epoch
    ├── EnvelopeError          a message envelope fails validation
    │   ├── ContextError       moved to another instance, operation, area or epoch
    │   ├── ForkError          sealed on another branch of the same epoch (epoch authenticator)
    │   └── ReplayError        the same sender and counter seen twice
    ├── AttachmentError        attachment metadata or hashes do not match
    │   └── StreamError        a STREAM chunk truncated, reordered or extended
    └── MerkleError            an audit-log proof or checkpoint does not verify
"""

from __future__ import annotations

__all__ = [
    "AttachmentError",
    "CertificateError",
    "CharterError",
    "CommitError",
    "ContextError",
    "CryptoError",
    "DecodeError",
    "DecryptionError",
    "EnvelopeError",
    "EpochError",
    "ForkError",
    "MerkleError",
    "PolicyError",
    "ReplayError",
    "SignatureError",
    "StreamError",
    "UnsupportedVersion",
    "WrongPassphrase",
]


class CryptoError(Exception):
    """Base class of every error raised by :mod:`opseal.crypto`."""


class DecodeError(CryptoError):
    """Bytes that do not decode to the expected structure."""


class UnsupportedVersion(DecodeError):
    """A label, version or algorithm identifier this code does not know."""


class SignatureError(CryptoError):
    """A signature that does not verify under the expected key."""


class DecryptionError(CryptoError):
    """An authenticated decryption that failed."""


class WrongPassphrase(DecryptionError):
    """A passphrase that does not open the key file."""


class CertificateError(CryptoError):
    """A certificate that is invalid, expired, revoked or does not chain."""


class CharterError(CryptoError):
    """A charter version that breaks the chain or signature rules."""


class PolicyError(CryptoError):
    """An action the operation charter does not allow."""


class CommitError(CryptoError):
    """A group commit that fails validation against the state or the charter."""


class EpochError(CommitError):
    """A commit or message for an epoch that is not the expected one."""


class EnvelopeError(CryptoError):
    """A message envelope that fails validation."""


class ContextError(EnvelopeError):
    """An envelope presented in another instance, operation, area or epoch."""


class ForkError(EnvelopeError):
    """An envelope or receipt bound to another branch of the same epoch: its epoch
    authenticator differs from the one this device derives, so the server showed members
    different commits for that epoch."""


class ReplayError(EnvelopeError):
    """An envelope whose (sender, counter) was already accepted."""


class AttachmentError(CryptoError):
    """Attachment metadata, size or hashes that do not match."""


class StreamError(AttachmentError):
    """A STREAM-encrypted attachment that was truncated, reordered or extended."""


class MerkleError(CryptoError):
    """A Merkle tree proof or signed checkpoint that does not verify."""
