"""Forward secrecy and post-compromise security against a real server (issue 9, design §3).

A thief copies a device's long-term keys and the init keys it holds at epoch ``n``, then reads
what the server stores (the commits carry every epoch secret, sealed per member). These tests
show exactly what that opens as members rotate, as the device forgets superseded keys and old
epoch secrets, and as a hostile server replays an old key package. Client logic only: SQLite.
"""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from opseal.client import secrecy
from opseal.client.verifier import IntegrityWarning
from opseal.crypto.charter import Charter
from opseal.crypto.encoding import b64d, b64e
from opseal.crypto.errors import CryptoError
from opseal.crypto.group import Commit, DeviceIdentity, GroupState, KeyPackage, create_commit
from opseal.crypto.group import open_epoch_secret as open_secret
from opseal.crypto.keys import HpkePrivateKey

from .conftest import PASSPHRASE
from .malicious import Attacker, attacker  # noqa: F401 (fixture)
from .test_malicious import kinds, state, synced

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
AREA = "seizures"


async def thief_opens(
    attacker: Attacker, epoch: int, stolen: DeviceIdentity, keys: list[HpkePrivateKey]
) -> bytes | None:
    """The epoch secret the thief opens from the server's stored commit for ``epoch``."""
    op, wco = attacker.op, attacker.onboarded.clients["wco"]
    rows = [Commit.from_bytes(r.body) for r in await attacker.db.entries(op, AREA, "commit")]
    [commit] = [c for c in rows if c.epoch == epoch]
    raw = wco.store.state(op, AREA, epoch)
    assert raw is not None
    try:
        return open_secret(commit, GroupState.from_bytes(raw), stolen, keys)
    except CryptoError:
        return None


async def test_a_stolen_device_opens_nothing_after_its_own_update_nor_through_a_replay(attacker):
    """Keys stolen at epoch n open n and any epoch other members start, but nothing after the
    device's own update; the device has then deleted the key that opened them, so a second
    theft opens none of those epochs; the long-term key alone opens none at all. A hostile
    server replaying the device's old key package is refused by the admitter and members."""
    op = attacker.op
    wco, fr, de = await synced(attacker, "wco", "fr-customs", "de-customs")
    n = state(fr, op, AREA).epoch
    stolen, keys_at_n = fr.identity, secrecy.held_init_keys(fr.store, op, AREA)
    listed = state(fr, op, AREA).member(fr.device_id)
    assert listed is not None
    assert [k.public_key for k in keys_at_n] == [listed.hpke_key]
    assert listed.hpke_key != stolen.hpke_key.public_key  # not the certificate's key

    assert await thief_opens(attacker, n, stolen, keys_at_n) == fr.store.secret(op, AREA, n)
    assert await wco.rotate(op, AREA) == [AREA]  # sealed to fr's init key, which the thief holds
    assert await thief_opens(attacker, n + 1, stolen, keys_at_n) == wco.store.secret(
        op, AREA, n + 1
    )
    await fr.sync()
    assert await fr.rotate(op, AREA) == [AREA]  # fr's own update: a key the thief never saw
    assert await wco.rotate(op, AREA) == [AREA]
    await fr.sync()
    assert fr.store.secret(op, AREA, n + 3) == wco.store.secret(op, AREA, n + 3) is not None
    for epoch in (n + 2, n + 3):
        assert await thief_opens(attacker, epoch, stolen, keys_at_n) is None

    keys_now = secrecy.held_init_keys(fr.store, op, AREA)
    assert len(keys_now) == 1
    assert keys_now[0].public_key not in {k.public_key for k in keys_at_n}
    for epoch in (n, n + 1):  # stolen now: the keys that opened these are gone
        assert await thief_opens(attacker, epoch, stolen, keys_now) is None
    assert await thief_opens(attacker, n + 3, stolen, keys_now) is not None
    for epoch in range(n + 4):
        assert await thief_opens(attacker, epoch, stolen, []) is None

    # a hostile server replays fr's first key package (an init key fr deleted and the thief
    # holds) after fr's removal: the re-admission refuses it, members refuse a commit adding it
    rows = await attacker.db.entries(op, AREA, "key-package")
    [old] = [KeyPackage.from_bytes(r.body) for r in rows if r.device_id == fr.device_id]
    assert old.init_key is not None
    assert await wco.remove(op, device=fr.device_id) == [fr.device_id]

    await attacker.db.add_key_package(old)
    assert await wco.admit(op, readmit=[fr.device_id]) == []
    assert (AREA, "key-package-refused") in kinds(wco)

    commit, new_state, _ = create_commit(
        state(wco, op, AREA), await wco.charter(op), wco.identity, now=wco.now(), adds=[old]
    )
    await attacker.db.add_commit(commit, new_state)
    await de.sync()
    assert (AREA, "commit-refused") in kinds(de)
    assert state(de, op, AREA).epoch == commit.epoch - 1


async def test_a_stolen_device_opens_nothing_older_than_the_window(server, attacker, monkeypatch):
    """Eight days on, the device's first sync replaces its week-old init key and forgets the
    since-join secrets superseded more than a week ago: a thief then opens nothing older
    than the epoch that was current a week ago, neither from the store nor from the server's
    commits; a shared area keeps its whole history."""
    op = attacker.op
    wco, fr = await synced(attacker, "wco", "fr-customs")
    for _ in range(2):
        assert await wco.rotate(op, AREA) == [AREA]
    await fr.sync()
    latest = state(fr, op, AREA).epoch
    assert sorted(fr.store.secrets(op, AREA)) == [1, 2, 3] == list(range(1, latest + 1))

    later = time.time() + max(secrecy.SINCE_JOIN_WINDOW, secrecy.INIT_KEY_PERIOD) + 86400

    class Later:  # every clock, the server's too, eight days on
        @staticmethod
        def time() -> float:
            return later + (time.monotonic() - started)

    started = time.monotonic()
    monkeypatch.setattr(server.ctx, "clock", Later.time)
    monkeypatch.setattr("opseal.client.client.time", Later)
    await fr.login()  # its session expired meanwhile
    await fr.sync()
    assert state(fr, op, AREA).epoch == latest + 1  # its own update
    assert sorted(fr.store.secrets(op, AREA)) == [latest, latest + 1]
    assert sorted(fr.store.secrets(op, "plan")) == list(range(state(fr, op, "plan").epoch + 1))
    keys = secrecy.held_init_keys(fr.store, op, AREA)
    await wco.login()
    await wco.sync()  # the states thief_opens reads
    for epoch in range(latest + 2):
        opened = await thief_opens(attacker, epoch, fr.identity, keys)
        assert (opened is not None) == (epoch == latest + 1)

    # the schedule admit --watch runs: only areas whose epoch is older than the period turn
    assert await wco.rotate_due() == []  # every epoch just moved
    assert sorted(await wco.rotate_due(period=0)) == sorted(wco.store.areas())


async def test_the_charter_sets_the_history_window_and_the_server_cannot_change_it(
    server, attacker, monkeypatch
):
    """The coordinator's charter keeps 'seizures' secrets two days: three and a half days on
    (rotations at days 1 and 1.9), the device has updated its own two-day-old init key and
    holds no secret of an epoch that ended more than two days ago, so a thief with its store
    opens nothing older, from the store or the server; half a day later a sync without any
    commit forgets the next one; 'plan', whose charter sets no window, keeps
    every secret and its key (as before). A server that lengthens the window in the charter
    it serves is refused: the charter is signed."""
    op, day = attacker.op, 86400
    wco, fr = await synced(attacker, "wco", "fr-customs")
    charter = await wco.charter(op, refresh=True)
    areas = [replace(a, history_window_s=2 * day) if a.name == AREA else a
             for a in charter.areas]  # fmt: skip
    draft = charter.next_version(issued_at=wco.now() - 1, areas=areas)
    user_key, _ = await asyncio.to_thread(wco.profile.load_user, PASSPHRASE)
    signed = draft.signed(user_key, wco.identity.user_cert)
    await wco.api.publish_charter(op, signed.to_bytes())
    for client in (wco, fr):
        assert (await client.charter(op, refresh=True)).area(AREA).history_window == 2 * day
    plan_keys = [k.public_key for k in secrecy.held_init_keys(fr.store, op, "plan")]

    offset = {"s": 0}

    class Later:  # every clock, the server's too
        @staticmethod
        def time() -> float:
            return real_time() + offset["s"]

    real_time = time.time
    monkeypatch.setattr(server.ctx, "clock", Later.time)
    monkeypatch.setattr("opseal.client.client.time", Later)
    first = state(fr, op, AREA).epoch
    for at in (day, day * 19 // 10):  # rotations, as admit --watch runs them
        offset["s"] = at
        for client in (wco, fr):
            await client.login()
        assert await wco.rotate(op, AREA) == [AREA]
        await fr.sync()
    assert sorted(fr.store.secrets(op, AREA)) == list(range(1, first + 3))
    offset["s"] = day * 7 // 2
    for client in (wco, fr):
        await client.login()
    await fr.sync()  # its init key is two days old: it updates, and forgets
    latest = state(fr, op, AREA).epoch
    assert latest == first + 3
    # epoch `first` ended a day in, 2.5 days ago; `first + 1` ended 1.6 days ago
    assert sorted(fr.store.secrets(op, AREA)) == [first + 1, first + 2, first + 3]
    keys = secrecy.held_init_keys(fr.store, op, AREA)
    await wco.sync()  # the states thief_opens reads
    for epoch in range(1, latest + 1):
        opened = await thief_opens(attacker, epoch, fr.identity, keys)
        assert (opened is not None) == (epoch == latest)
    offset["s"] = day * 4  # no commit since: its sync alone forgets what left the window
    await fr.login()
    await fr.sync()
    assert state(fr, op, AREA).epoch == latest
    assert sorted(fr.store.secrets(op, AREA)) == [first + 2, first + 3]
    plan_epoch = state(fr, op, "plan").epoch
    assert sorted(fr.store.secrets(op, "plan")) == list(range(plan_epoch + 1))
    assert [k.public_key for k in secrecy.held_init_keys(fr.store, op, "plan")] == plan_keys

    def lengthen(body: dict[str, Any]) -> dict[str, Any]:
        raw = b64d(body["versions"][-1])
        at = raw.index((2 * day).to_bytes(8, "big"))
        forged = raw[:at] + (365 * day).to_bytes(8, "big") + raw[at + 8 :]
        assert Charter.from_bytes(forged).area(AREA).history_window == 365 * day
        return {**body, "versions": [*body["versions"][:-1], b64e(forged)]}

    attacker.proxy.rewrite(r"/api/v1/operations/[^/]+/charter", lengthen)
    de = await attacker.victim("de-customs")
    with pytest.raises(IntegrityWarning, match="charter does not verify"):
        await de.charter(op, refresh=True)
    assert "charter-refused" in {kind for _, kind in kinds(de)}
