"""Profiles: a directory per identity holding its passphrase-sealed keys and its local store.

Layout of ``<home>/<profile>/`` (default home ``~/.opseal``, mode 0700):

- ``profile.json`` — server URL, instance id, pinned audit log key, organisation, user and
  device ids, CA bundle; nothing secret;
- ``device.key`` — the device's signing and HPKE keys, its certificates and the store key,
  sealed under the passphrase (Argon2id + AES-256-GCM);
- ``user.key`` — the user's identity key (certifies this user's devices), sealed likewise;
- ``org-root.key`` — for focal points only: the organisation root key;
- ``state.db`` — the local store.

The passphrase comes from ``--passphrase-file``, the ``OPSEAL_PASSPHRASE`` variable (service
accounts) or a prompt.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opseal.crypto.encoding import b64d, b64e

from .errors import ClientError

if TYPE_CHECKING:  # the key code (cryptography) loads when a key is read, not for `--help`
    from opseal.crypto.certs import Certificate
    from opseal.crypto.group import DeviceIdentity
    from opseal.crypto.keys import KdfParams, SigningKey

__all__ = [
    "DEFAULT_HOME",
    "MIN_PASSPHRASE",
    "Profile",
    "ProfileError",
    "ProfileInfo",
    "check_passphrase",
    "device_from",
]

DEFAULT_HOME = Path(os.environ.get("OPSEAL_HOME", Path.home() / ".opseal"))
MIN_PASSPHRASE = {"org-root": 16, "user": 12, "device": 12}
"""The shortest passphrase, in characters, that may seal each key file (design §12)."""
_KEY_NAMES = {
    "org-root": "an organisation root key",
    "user": "a user key",
    "device": "a device key",
}


class ProfileError(ClientError):
    """A profile that is missing, incomplete or cannot be opened."""


def check_passphrase(passphrase: str, purpose: str) -> None:
    """Refuse a passphrase too short to seal the ``purpose`` key file, naming the rule."""
    least = MIN_PASSPHRASE.get(purpose, 12)
    if len(passphrase) < least:
        what = _KEY_NAMES.get(purpose, f"a {purpose} key")
        raise ProfileError(
            f"passphrase too weak: {what} needs a passphrase of at least {least} characters "
            f"(this one has {len(passphrase)}); a few unrelated words are easy to type"
        )


@dataclass
class ProfileInfo:
    """The non-secret part of a profile."""

    server: str = ""
    instance_id: str = ""
    log_key: str = ""
    org_id: str = ""
    user_id: str = ""
    user_kind: str = "person"
    device_id: str = ""
    ca_bundle: str = ""
    allow_http: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Profile:
    """One profile directory. Keys are read only when a passphrase is given."""

    def __init__(self, name: str = "default", home: Path | str | None = None) -> None:
        self.name = name
        self.path = Path(home or DEFAULT_HOME) / name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)

    @property
    def exists(self) -> bool:
        return (self.path / "profile.json").exists()

    # -- info --------------------------------------------------------------------------
    def info(self) -> ProfileInfo:
        try:
            data = json.loads((self.path / "profile.json").read_text())
        except FileNotFoundError as exc:
            raise ProfileError(
                f"no profile {self.name!r} in {self.path.parent}: run `opseal enrol` first"
            ) from exc
        return ProfileInfo(**data)

    def save_info(self, info: ProfileInfo) -> None:
        self.create()
        self._write(self.path / "profile.json", json.dumps(asdict(info), indent=2).encode())

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- keys --------------------------------------------------------------------------
    def save_key(
        self,
        purpose: str,
        payload: dict[str, str],
        passphrase: str,
        params: KdfParams | None = None,
    ) -> None:
        from opseal.crypto.keys import seal_key_file

        check_passphrase(passphrase, purpose)
        self.create()
        blob = seal_key_file(
            json.dumps(payload).encode(), passphrase, purpose=purpose, params=params
        )
        self._write(self.path / f"{purpose}.key", blob)

    def load_key(self, purpose: str, passphrase: str) -> dict[str, str]:
        from opseal.crypto.keys import open_key_file

        try:
            blob = (self.path / f"{purpose}.key").read_bytes()
        except FileNotFoundError as exc:
            raise ProfileError(f"profile {self.name!r} has no {purpose} key") from exc
        keys: dict[str, str] = json.loads(open_key_file(blob, passphrase, purpose=purpose))
        return keys

    def has_key(self, purpose: str) -> bool:
        return (self.path / f"{purpose}.key").exists()

    def save_root(self, root: SigningKey, passphrase: str, params: KdfParams | None = None) -> None:
        self.save_key("org-root", {"seed": b64e(root.private_bytes())}, passphrase, params)

    def load_root(self, passphrase: str) -> SigningKey:
        from opseal.crypto.keys import SigningKey

        return SigningKey(b64d(self.load_key("org-root", passphrase)["seed"]))

    def save_user(
        self,
        key: SigningKey,
        cert: Certificate | None,
        passphrase: str,
        params: KdfParams | None = None,
    ) -> None:
        payload = {"seed": b64e(key.private_bytes())}
        if cert is not None:
            payload["certificate"] = b64e(cert.to_bytes())
        self.save_key("user", payload, passphrase, params)

    def load_user(self, passphrase: str) -> tuple[SigningKey, Certificate | None]:
        from opseal.crypto.certs import Certificate
        from opseal.crypto.keys import SigningKey

        data = self.load_key("user", passphrase)
        cert = Certificate.from_bytes(b64d(data["certificate"])) if "certificate" in data else None
        return SigningKey(b64d(data["seed"])), cert

    def save_device(
        self,
        identity: DeviceIdentity,
        store_key: bytes,
        passphrase: str,
        params: KdfParams | None = None,
    ) -> None:
        self.save_key(
            "device",
            {
                "signing": b64e(identity.signing_key.private_bytes()),
                "hpke": b64e(identity.hpke_key.private_bytes()),
                "user_certificate": b64e(identity.user_cert.to_bytes()),
                "device_certificate": b64e(identity.device_cert.to_bytes()),
                "store_key": b64e(store_key),
            },
            passphrase,
            params,
        )

    def load_device(self, passphrase: str) -> tuple[DeviceIdentity, bytes]:
        return device_from(self.load_key("device", passphrase))


def device_from(data: dict[str, str]) -> tuple[DeviceIdentity, bytes]:
    """The device identity and store key in an opened device key file (or from the agent)."""
    from opseal.crypto.certs import Certificate
    from opseal.crypto.group import DeviceIdentity
    from opseal.crypto.keys import HpkePrivateKey, SigningKey

    identity = DeviceIdentity(
        Certificate.from_bytes(b64d(data["user_certificate"])),
        Certificate.from_bytes(b64d(data["device_certificate"])),
        SigningKey(b64d(data["signing"])),
        HpkePrivateKey(b64d(data["hpke"])),
    )
    return identity, b64d(data["store_key"])
