"""OpSeal's crypto core: pure, synchronous, no I/O and no clock it was not given.

Modules, each with its own ``__all__``:

- :mod:`.errors` — the :class:`CryptoError` family;
- :mod:`.encoding` — the explicit binary encoding and base64url for the wire;
- :mod:`.keys` — Ed25519 and ML-KEM-768+X25519 HPKE keys, fingerprints, key files;
- :mod:`.certs` — organisation root -> user -> device certificates, revocations;
- :mod:`.charter` — operation charter versions and policy queries;
- :mod:`.group` — area group states, key packages and commits;
- :mod:`.envelope` — message envelopes and the replay / gap tracker;
- :mod:`.attachments` — STREAM-encrypted attachments;
- :mod:`.merkle` — RFC 9162 Merkle tree proofs and signed checkpoints.
"""

from .attachments import FileMeta, decrypt_file, encrypt_file
from .certs import Certificate, Revocation
from .charter import AreaPolicy, Charter, Member, verify_charter_chain
from .envelope import Envelope, Header, ReplayTracker, open_envelope, seal
from .errors import CryptoError
from .group import (
    Commit,
    DeviceIdentity,
    GroupState,
    KeyPackage,
    apply_commit,
    create_area,
    create_commit,
    open_epoch_secret,
    open_history,
)
from .keys import HpkePrivateKey, HpkePublicKey, SigningKey, VerifyKey
from .merkle import Checkpoint, verify_consistency, verify_inclusion

__all__ = [
    "AreaPolicy",
    "Certificate",
    "Charter",
    "Checkpoint",
    "Commit",
    "CryptoError",
    "DeviceIdentity",
    "Envelope",
    "FileMeta",
    "GroupState",
    "Header",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KeyPackage",
    "Member",
    "ReplayTracker",
    "Revocation",
    "SigningKey",
    "VerifyKey",
    "apply_commit",
    "create_area",
    "create_commit",
    "decrypt_file",
    "encrypt_file",
    "open_envelope",
    "open_epoch_secret",
    "open_history",
    "seal",
    "verify_charter_chain",
    "verify_consistency",
    "verify_inclusion",
]
