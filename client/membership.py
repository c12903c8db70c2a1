"""What a device remembers about an area's membership beyond its group state (design §4, §12).

- **Removed devices stay out**: every device a commit removed is remembered per area, and an
  admitting client does not add it back unless a coordinator asks for it by name
  (``opseal admit --readmit DEVICE``); adding it again forgets the mark.
- **Removed organisations stay out** (``opseal remove --org``): the admitting client that
  removed them remembers the organisation per operation, with the charter version it removed
  it under, and admits none of its devices while that charter is current unless the
  organisation is named in ``readmit``; a new charter version (which may re-list it
  deliberately) or a re-admission forgets the mark.
- **Key packages are single-use and expire**: an admitting client refuses a package older than
  :data:`KEY_PACKAGE_TTL` (or dated in the future) and one whose exact bytes an earlier commit
  of the area already added; every member refuses a commit that adds one (so an init key the
  device has since deleted — or a thief still holds — is never sealed a live epoch). Used
  packages are remembered for as long as they could still be fresh, so the record stays
  small.

Both records are kept in the store for every commit the device verifies or makes, so every
member that may admit holds the same ones.
"""

from __future__ import annotations

import json

from opseal.crypto.encoding import sha256
from opseal.crypto.group import MAX_CLOCK_SKEW, Commit, KeyPackage

from .store import Store

__all__ = [
    "KEY_PACKAGE_TTL",
    "check_adds",
    "check_fresh",
    "forget_removed_org",
    "note_commit",
    "note_removed_org",
    "removed",
    "removed_orgs",
]

KEY_PACKAGE_TTL = 7 * 86400
"""A key package is admitted at most this many seconds after it was made (seven days, like an
enrolment code); after that the device asks again (``opseal op join``)."""


def _load(store: Store, key: str) -> dict[str, int]:
    raw = store.get(key)
    return {} if raw is None else dict(json.loads(raw))


def _save(store: Store, key: str, value: dict[str, int]) -> None:
    store.put(key, json.dumps(value, sort_keys=True).encode())


def removed(store: Store, op: str, area: str) -> set[str]:
    """Devices removed from ``op``/``area`` and not re-admitted since."""
    return set(_load(store, f"removed/{op}/{area}"))


def removed_orgs(store: Store, op: str, charter_hash: bytes) -> set[str]:
    """Organisations removed from ``op`` under the charter ``charter_hash`` (still current)
    and not re-admitted since."""
    return {org for org, at in _load_orgs(store, op).items() if at == charter_hash.hex()}


def note_removed_org(store: Store, op: str, org: str, charter_hash: bytes) -> None:
    """Remember that ``org`` was removed from ``op`` under the charter ``charter_hash``."""
    orgs = _load_orgs(store, op)
    orgs[org] = charter_hash.hex()
    store.put(f"removed-orgs/{op}", json.dumps(orgs, sort_keys=True).encode())


def forget_removed_org(store: Store, op: str, org: str) -> None:
    """Let ``org``'s devices be admitted to ``op`` again."""
    orgs = _load_orgs(store, op)
    if orgs.pop(org, None) is not None:
        store.put(f"removed-orgs/{op}", json.dumps(orgs, sort_keys=True).encode())


def _load_orgs(store: Store, op: str) -> dict[str, str]:
    raw = store.get(f"removed-orgs/{op}")
    return {} if raw is None else dict(json.loads(raw))


def note_commit(store: Store, commit: Commit, now: int) -> None:
    """Remember the devices ``commit`` removed and the key packages it used."""
    op, area = commit.operation_id, commit.area
    gone = _load(store, f"removed/{op}/{area}")
    gone.update({device_id: commit.epoch for device_id in commit.removes})
    for package in commit.adds:
        gone.pop(package.device_id, None)
    _save(store, f"removed/{op}/{area}", gone)
    used = {
        digest: made
        for digest, made in _load(store, f"used-packages/{op}/{area}").items()
        if made >= now - KEY_PACKAGE_TTL - MAX_CLOCK_SKEW
    }
    used.update({sha256(p.to_bytes()).hex(): p.created_at for p in commit.adds})
    _save(store, f"used-packages/{op}/{area}", used)


def check_fresh(store: Store, package: KeyPackage, now: int) -> str | None:
    """Why ``package`` may not be admitted (stale, future-dated or used), or None."""
    if package.created_at < now - KEY_PACKAGE_TTL:
        return f"key package of {package.device_id!r} has expired: the device must ask again"
    if package.created_at > now + MAX_CLOCK_SKEW:
        return f"key package of {package.device_id!r} is dated in the future"
    used = _load(store, f"used-packages/{package.operation_id}/{package.area}")
    if sha256(package.to_bytes()).hex() in used:
        return f"key package of {package.device_id!r} was already used once"
    return None


def check_adds(store: Store, commit: Commit) -> str | None:
    """Why a received ``commit`` may not be taken: it adds a key package that was stale when
    the commit was made, or that an earlier commit of the area already used; else None."""
    used = _load(store, f"used-packages/{commit.operation_id}/{commit.area}")
    for package in commit.adds:
        if package.created_at < commit.created_at - KEY_PACKAGE_TTL:
            return f"commit adds an expired key package of {package.device_id!r}"
        if sha256(package.to_bytes()).hex() in used:
            return f"commit adds the key package of {package.device_id!r} a second time"
    return None
