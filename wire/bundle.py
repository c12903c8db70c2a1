"""The web app's bundle (design §17): the files one build made, their hashes, the bundle hash.

The build (``web/tools/bundle.ts``) writes the page, its hashed assets and ``manifest.json``
(every file's SHA-256 and the bundle hash) into ``opseal/server/web-app``. The server serves
that installed bundle and publishes its hash; ``opseal web verify`` fetches a served bundle and
compares it here with the installed one. The bundle hash is the SHA-256 of the lines
``"<name> <sha256 hex>\\n"`` sorted by name, so it pins every byte of every file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["INDEX", "MANIFEST", "Bundle", "BundleError", "bundle_hash", "differences", "installed"]

INDEX = "index.html"
MANIFEST = "manifest.json"
_NAME = re.compile(r"index\.html|assets/app-[0-9a-f]{16}\.(?:js|css)")


class BundleError(Exception):
    """A bundle whose manifest is malformed or whose files do not match it."""


def bundle_hash(hashes: Mapping[str, str]) -> str:
    """The bundle hash of files with these SHA-256 hex digests, by name."""
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """One build of the web app: each file's bytes by its name (``index.html``, ``assets/...``)."""

    files: Mapping[str, bytes]

    @property
    def hashes(self) -> dict[str, str]:
        return {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}

    @property
    def bundle_hash(self) -> str:
        return bundle_hash(self.hashes)

    @classmethod
    def load(cls, root: Traversable) -> Bundle | None:
        """The bundle in the folder ``root``; None when it holds no manifest (not built)."""
        manifest = root / MANIFEST
        if not manifest.is_file():
            return None
        expected = _parse(manifest.read_bytes())
        bundle = cls({name: (root / name).read_bytes() for name in expected})
        for name, digest in bundle.hashes.items():
            if digest != expected[name]:
                raise BundleError(f"web app: {name} does not match its manifest (rebuild it)")
        return bundle


def _parse(data: bytes) -> dict[str, str]:
    try:
        manifest = json.loads(data)
        listed = manifest["files"]
        stated = manifest["bundle_hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"web app: {MANIFEST} is not a bundle manifest") from exc
    if not isinstance(listed, dict) or INDEX not in listed:
        raise BundleError(f"web app: {MANIFEST} lists no {INDEX}")
    for name, digest in listed.items():
        if not _NAME.fullmatch(name) or not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
            raise BundleError(f"web app: {MANIFEST} lists a bad entry {name!r}")
    if stated != bundle_hash(listed):
        raise BundleError(f"web app: {MANIFEST}'s bundle hash does not match its files")
    return dict(listed)


def installed() -> Bundle | None:
    """The bundle this installation of OpSeal ships; None when it was installed unbuilt."""
    return Bundle.load(files("opseal.server") / "web-app")


def differences(expected: Mapping[str, str], found: Mapping[str, str | None]) -> list[str]:
    """What differs between the installed hashes and a served bundle's (None: not served)."""
    problems = []
    for name in sorted(expected.keys() | found.keys()):
        want, got = expected.get(name), found.get(name)
        if want is None:
            problems.append(f"{name}: served, but not part of the installed bundle")
        elif got is None:
            problems.append(f"{name}: missing from the served bundle")
        elif got != want:
            problems.append(f"{name}: sha256 {got} served, {want} installed")
    return problems
