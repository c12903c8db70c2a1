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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Names are loaded on first use (PEP 562), so that importing one light submodule, or
# `opseal --help`, does not pay for cryptography.
_WHERE = {
    "AreaPolicy": "charter",
    "Certificate": "certs",
    "Charter": "charter",
    "Checkpoint": "merkle",
    "Commit": "group",
    "CryptoError": "errors",
    "DeviceIdentity": "group",
    "Envelope": "envelope",
    "FileMeta": "attachments",
    "GroupState": "group",
    "Header": "envelope",
    "HpkePrivateKey": "keys",
    "HpkePublicKey": "keys",
    "KeyPackage": "group",
    "Member": "charter",
    "ReplayTracker": "envelope",
    "Revocation": "certs",
    "SigningKey": "keys",
    "VerifyKey": "keys",
    "apply_commit": "group",
    "create_area": "group",
    "create_commit": "group",
    "decrypt_file": "attachments",
    "encrypt_file": "attachments",
    "open_envelope": "envelope",
    "open_epoch_secret": "group",
    "open_history": "group",
    "seal": "envelope",
    "verify_charter_chain": "charter",
    "verify_consistency": "merkle",
    "verify_inclusion": "merkle",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
