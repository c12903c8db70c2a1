"""Client rules proved one by one (issue 12), each against the real server."""
# ruff: noqa: F811 -- the attacker fixture is imported, then taken as a parameter

from __future__ import annotations

import json
import time
import uuid

import pytest

from opseal.client.client import Client
from opseal.crypto.envelope import MAX_COUNTER_JUMP

from .malicious import Attacker, attacker  # noqa: F401 (fixture)

OP = "op-stop-v"
JUMP = 100_000


def gap_warnings(client: Client) -> list[tuple[str, int | None, str]]:
    return [(area, seq, msg) for _, _, area, seq, kind, msg in client.warnings() if kind == "gap"]


async def test_withholding_exactly_one_entry_gives_one_gap_warning_naming_it(attacker: Attacker):
    """A server that withholds one entry makes the reader warn once, naming that sequence
    number, and list the one missing counter."""
    op = attacker.op
    fr, de = attacker.onboarded.clients["fr-customs"], attacker.onboarded.clients["de-customs"]
    for client in (fr, de):
        await client.sync()
    fr.enqueue(op, "seizures", [("seizure", {"record_id": f"FR-{n}"}) for n in range(1, 4)])
    await fr.flush()
    stored = await attacker.db.messages(op, "seizures")
    withheld = stored[1][0]
    await attacker.db.delete(op, "seizures", [withheld])

    await de.sync()

    [(area, _, message)] = gap_warnings(de)
    assert area == "seizures"
    assert f"entries {withheld}..{withheld} of seizures" in message
    assert de.gaps(op, "seizures") == {fr.device_id: [2]}


async def test_counter_jumps_leave_the_reader_small_replay_state_and_a_fast_sync(onboarded):
    """500 messages whose counters jump by 100,000 each leave the reader under 1 MB of replay
    state and a sync that stays in seconds, with every run of missing counters listed."""
    assert JUMP <= MAX_COUNTER_JUMP
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    await fr.sync()
    await de.sync()
    state, secret = fr.verifier.current(OP, "seizures")
    envelopes = [
        fr.outbox._seal(
            state, secret, n * JUMP, uuid.uuid4(), "text", b'"jump"', "H0", False
        ).to_bytes()
        for n in range(1, 501)
    ]
    await fr.api.post_batch(OP, "seizures", envelopes)

    started = time.perf_counter()
    report = await de.sync()
    took = time.perf_counter() - started

    assert report.messages == 500
    # Under a second on an idle machine; the bound only catches the unbounded state of old
    # (gigabytes re-serialised per entry), not load on a shared CI machine.
    assert took < 5.0, f"sync took {took:.2f} s"
    rows = de.store.db.execute("SELECT highest, missing FROM replay").fetchall()
    assert sum(len(missing) for _, missing in rows) < 1_000_000
    runs = de.gaps(OP, "seizures")[fr.device_id]
    assert len(runs) == 500
    assert runs[0] == [1, JUMP - 1]
    assert runs[-1] == [499 * JUMP + 1, 500 * JUMP - 1]
    saved = dict(de.store.db.execute("SELECT sender, missing FROM replay").fetchall())
    assert json.loads(saved[fr.device_id]) == runs


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # client-side logic
async def test_a_gap_warning_is_resolved_once_the_skipped_entries_are_present(attacker: Attacker):
    """Entries a server skipped leave a gap warning and possibly missing counters; once the
    server serves them, the next sync fetches them again, and both warnings are gone."""
    op = attacker.op
    fr = attacker.onboarded.clients["fr-customs"]
    de = await attacker.victim("de-customs")
    for client in (fr, de):
        await client.sync()
    fr.enqueue(op, "seizures", [("seizure", {"record_id": f"FR-{n}"}) for n in range(1, 4)])
    await fr.flush()
    withheld = (await attacker.db.messages(op, "seizures"))[1][0]
    attacker.proxy.rewrite(
        r"/api/v1/(sync|operations/.*/events)",
        lambda page: {**page, "events": [e for e in page["events"] if e["seq"] != withheld]},
    )
    await de.sync()
    [(area, seq, _)] = gap_warnings(de)
    assert (area, seq) == ("seizures", withheld + 1)
    assert de.gaps(op, "seizures") == {fr.device_id: [2]}

    attacker.proxy.rewrites.clear()  # the server now serves the skipped entry
    await de.sync()
    assert gap_warnings(de) == []
    assert de.gaps(op, "seizures") == {}
    records = sorted(m.json()["record_id"] for m in de.read(op, "seizures"))
    assert records == ["FR-1", "FR-2", "FR-3"]
