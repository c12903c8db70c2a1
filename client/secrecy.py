"""Forward secrecy on the device: short-lived init keys and how long epoch secrets are kept
(design §3, "What a stolen device opens").

**Init keys.** Epoch secrets are sealed to the init key a device's roster entry lists, never
(for rosters made since init keys) to the long-term HPKE key of its one-year certificate. The
device makes a fresh init key for every key package it posts and for every commit it makes
(an update commit replaces its own key in the roster); the private half is kept, sealed, in
the local store and deleted as soon as an applied commit shows the roster no longer lists it.
So a thief who steals the device later cannot open the commits the server still stores for
earlier epochs, and one who stole it earlier holds a key the roster has dropped.

**Retention.** The charter sets it per area (:attr:`AreaPolicy.history_window`): an epoch's
secret is kept only until its successor is that old. Unless the charter sets a window, a
``shared`` area keeps every epoch secret (newcomers are sealed the history, and the operation
wants it read) and a ``since-join`` area keeps them :data:`SINCE_JOIN_WINDOW`. A device also
replaces its own init key once it is as old as the window (if shorter than
:data:`INIT_KEY_PERIOD`), so a stolen device opens nothing older than the window, neither
from its store nor from the server's commits sealed to the init key it holds.
"""

from __future__ import annotations

import json

from opseal.crypto.charter import DEFAULT_SINCE_JOIN_WINDOW, Charter
from opseal.crypto.envelope import forget_epoch_keys
from opseal.crypto.group import DeviceIdentity, GroupState
from opseal.crypto.keys import HpkePrivateKey, HpkePublicKey

from .store import Store

__all__ = [
    "INIT_KEY_PERIOD",
    "SINCE_JOIN_WINDOW",
    "after_commit",
    "forget_old_secrets",
    "fresh_init_key",
    "held_init_keys",
    "key_age",
    "key_period",
    "secret_window",
]

SINCE_JOIN_WINDOW = DEFAULT_SINCE_JOIN_WINDOW
"""Seconds a ``since-join`` area's epoch secret is kept after the next epoch began, unless
its charter sets a window."""
INIT_KEY_PERIOD = 7 * 86400
"""Seconds after which a device replaces its own init key in an area (an update commit at
its next sync): a week, like :data:`SINCE_JOIN_WINDOW`, so a stolen device opens about a
week of past epochs whether from its store or from the server's commits. Every member
downloads every update (360 kB for 300 devices), so a daily update by each of 300 devices
would cost each member some 100 MB a day per area; weekly, some 15 MB. An area whose
charter sets a shorter history window renews at that window instead (:func:`key_period`)."""


def fresh_init_key(store: Store, op: str, area: str, now: int) -> HpkePublicKey:
    """Make and keep a new init key for ``op``/``area``; return its public half."""
    key = HpkePrivateKey.generate()
    store.add_init_key(op, area, key.public_key.key_id, key.private_bytes(), now)
    return key.public_key


def key_age(store: Store, state: GroupState, identity: DeviceIdentity, now: int) -> int | None:
    """Seconds since this device made the key its roster entry in ``state`` lists (the
    certificate's long-term key counts from the certificate's issue); None if not a member."""
    entry = state.member(identity.device_id)
    if entry is None:
        return None
    if entry.hpke_key == identity.hpke_key.public_key:
        return now - identity.device_cert.issued_at
    made = store.init_key_made(state.operation_id, state.area, entry.hpke_key.key_id)
    return now - made if made is not None else None


def held_init_keys(store: Store, op: str, area: str) -> list[HpkePrivateKey]:
    """The init keys this device still holds for ``op``/``area``."""
    return [HpkePrivateKey(raw) for raw in store.init_keys(op, area)]


def secret_window(charter: Charter, area: str) -> int | None:
    """Seconds an epoch secret of ``area`` is kept once superseded (None: for ever), as the
    charter sets it."""
    return charter.area(area).history_window


def key_period(charter: Charter, area: str, period: int = INIT_KEY_PERIOD) -> int:
    """Age at which this device replaces its own init key in ``area``: ``period``, or the
    area's history window if shorter — every epoch the key opens from the server began after
    it was made, so a key younger than the window opens nothing older than the window."""
    window = secret_window(charter, area)
    return period if window is None else min(period, window)


def after_commit(
    store: Store,
    before: GroupState | None,
    after: GroupState,
    device_id: str,
    *,
    window: int | None,
    now: int,
) -> None:
    """Once a commit moved ``before`` to ``after``: drop the init keys the roster no longer
    lists for this device and the epoch secrets older than ``window``."""
    _settle_init_keys(store, before, after, device_id)
    _forget_old_secrets(store, after.operation_id, after.area, window, now, after)


def forget_old_secrets(store: Store, op: str, area: str, window: int | None, now: int) -> None:
    """Drop the epoch secrets of ``op``/``area`` superseded more than ``window`` ago (run at
    every sync, so a quiet area forgets them too)."""
    _forget_old_secrets(store, op, area, window, now, None)


def _settle_init_keys(
    store: Store, before: GroupState | None, after: GroupState, device_id: str
) -> None:
    """Keep only the init key the roster lists, or none once removed; a device not yet
    admitted keeps the keys of the packages it waits with."""
    entry = after.member(device_id)
    if entry is not None:
        store.drop_init_keys(after.operation_id, after.area, keep=entry.hpke_key.key_id)
    elif before is not None and before.member(device_id) is not None:
        store.drop_init_keys(after.operation_id, after.area)


def _forget_old_secrets(
    store: Store, op: str, area: str, window: int | None, now: int, after: GroupState | None
) -> None:
    """Epoch ``e``'s secret goes once epoch ``e + 1`` began more than ``window`` ago: the
    dates of epochs still held are remembered as commits are applied."""
    key = f"epoch-dates/{op}/{area}"
    raw = store.get(key)
    dates = {int(e): at for e, at in json.loads(raw).items()} if raw else {}
    kept = dict(dates)
    if after is not None:
        dates[after.epoch] = after.created_at
    if window is not None:
        begun = [e for e, at in dates.items() if at <= now - window]
        if begun:
            cutoff = max(begun)
            store.drop_secrets(op, area, before=cutoff)
            forget_epoch_keys()  # the cache held them too
            dates = {e: at for e, at in dates.items() if e >= cutoff}
    if dates != kept:  # most syncs forget nothing: no write then
        store.put(key, json.dumps(dates, sort_keys=True).encode())
