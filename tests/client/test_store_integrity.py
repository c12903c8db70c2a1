"""The local store at rest (issue 12): rows authenticated under the store key, secrets and
plaintext absent from the database file and its WAL. Against the real server."""

from __future__ import annotations

import os
import sqlite3
import uuid

import pytest

from opseal.client.client import Client
from opseal.client.store import StoreTampered
from opseal.crypto.keys import SigningKey

from .conftest import PASSPHRASE

OP = "op-stop-v"


def tamper_warnings(client: Client) -> list[str]:
    return [w[5] for w in client.warnings() if w[4] == "store-tampered"]


def _db(client: Client) -> sqlite3.Connection:
    """A second connection to the client's store file: what malware on the laptop would use."""
    return sqlite3.connect(client.profile.path / "state.db", isolation_level=None)


async def test_tampered_pin_row_is_refused(onboarded):
    """A pinned coordinator root replaced in the store file (by another root's key id, or by
    another operation's sealed pin) is refused with a warning, not trusted."""
    fr = onboarded.clients["fr-customs"]
    await fr.charter(OP, refresh=True)
    forged = SigningKey.generate().verify_key.key_id
    with _db(fr) as db:
        (original,) = db.execute("SELECT root_key_id FROM pins WHERE op = ?", (OP,)).fetchone()
        db.execute("UPDATE pins SET root_key_id = ? WHERE op = ?", (forged, OP))

    with pytest.raises(StoreTampered, match=f"pin/{OP} was altered"):
        await fr.charter(OP, refresh=True)
    assert tamper_warnings(fr) == [f"local store: the row pin/{OP} was altered and is refused"]

    with _db(fr) as db:  # a validly sealed pin, but of another operation
        db.execute("INSERT INTO pins VALUES ('op-other', ?)", (original,))
    with pytest.raises(StoreTampered, match="pin/op-other"):
        fr.store.pin("op-other")


async def test_tampered_state_and_charter_rows_are_refused(onboarded):
    """A group state or a charter version altered in the file is refused with a warning."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    with _db(fr) as db:
        db.execute("UPDATE states SET epoch = epoch + 50 WHERE op = ? AND area = 'plan'", (OP,))
        db.execute("UPDATE charters SET version = 7 WHERE op = ?", (OP,))
    with pytest.raises(StoreTampered, match=f"state/{OP}/plan/"):
        fr.store.latest_state(OP, "plan")
    with pytest.raises(StoreTampered, match=f"charter/{OP}/7"):
        fr.store.charters(OP)
    assert len(tamper_warnings(fr)) == 2


async def test_tampered_message_metadata_is_refused(onboarded):
    """A message whose row is moved to another content type or sequence number is left out
    of what the client reads, with a warning; its metadata is not in clear columns."""
    wco, fr = onboarded.clients["wco"], onboarded.clients["fr-customs"]
    first = await wco.post(OP, "plan", "text", {"text": "first"}, handling="H2")
    second = await wco.post(OP, "plan", "text", {"text": "second"})
    await fr.sync()
    assert fr.store.message(first).handling == "H2"
    assert fr.store.message(first).org == "wco"
    clear = fr.store.db.execute("SELECT DISTINCT sender, org, handling FROM messages").fetchall()
    assert clear == [("", "", "")]

    with _db(fr) as db:
        db.execute("UPDATE messages SET content_type = 'alert' WHERE message_id = ?", (first,))
        db.execute("UPDATE messages SET seq = seq + 100 WHERE message_id = ?", (second,))

    assert fr.store.message(first) is None
    assert fr.store.messages(OP, "plan") == []
    assert len(tamper_warnings(fr)) >= 2


async def test_marked_record_leaves_no_marker_or_epoch_secret_in_the_store_files(onboarded):
    """After a sync of a marked seizure record, neither the marker text nor any epoch secret
    appears in the bytes of the reader's database file or its WAL."""
    fr, de = onboarded.clients["fr-customs"], onboarded.clients["de-customs"]
    marker = f"MARKER-{uuid.uuid4().hex}"
    record = {
        "record_id": "FR-1", "case_ref": "C-1", "reporting_country": "FR",
        "seizure_date": "2025-05-13", "transport_mode": "postal", "ecommerce": True,
        "goods": [{"category": "medicines", "description": marker, "quantity_items": 5}],
        "remarks": marker,
    }  # fmt: skip
    await fr.sync()
    await fr.post_seizures(OP, [record], handling="H2")
    await de.sync()

    [message] = de.store.messages(OP, "seizures")
    assert marker in message.plaintext.decode()  # the reader did get it
    secrets = [s for area in ("plan", "seizures", "stakeholders")
               for s in de.store.secrets(OP, area).values()]  # fmt: skip
    assert secrets
    for client in (de, fr):
        path = client.profile.path / "state.db"
        files = [path, path.with_name("state.db-wal")]
        assert os.path.getsize(files[1]) > 0  # the WAL holds the recent writes
        data = b"".join(f.read_bytes() for f in files)
        assert marker.encode() not in data
        for secret in secrets:
            assert secret not in data


async def test_older_store_is_sealed_once_at_open(onboarded):
    """A store written before rows were sealed (clear pin, charters, states, messages) is
    sealed at the next open, and reads back the same."""
    fr = onboarded.clients["fr-customs"]
    await fr.sync()
    pin, charters = fr.store.pin(OP), fr.store.charters(OP)
    epoch, state = fr.store.latest_state(OP, "plan")
    db = fr.store.db
    db.execute("UPDATE pins SET root_key_id = ?", (pin,))
    db.execute("DELETE FROM charters")
    for version, body in enumerate(charters, 1):
        db.execute("INSERT INTO charters VALUES (?, ?, ?)", (OP, version, body))
    db.execute("UPDATE states SET state = ? WHERE area = 'plan' AND epoch = ?", (state, epoch))
    db.execute("DELETE FROM meta WHERE key = 'integrity'")
    await fr.close()

    reopened = await Client.open(fr.profile, PASSPHRASE, login=False)
    onboarded.clients["fr-customs"] = reopened
    assert reopened.store.pin(OP) == pin
    assert reopened.store.charters(OP) == charters
    assert reopened.store.latest_state(OP, "plan") == (epoch, state)
    assert reopened.store.db.execute("SELECT root_key_id FROM pins").fetchone()[0] != pin
    assert tamper_warnings(reopened) == []


def test_secrets_read_in_a_transaction_follow_its_writes_and_rollbacks(tmp_path):
    """Inside a write transaction the store serves an epoch's state and secret once opened
    (a sync page reads them per message); a secret dropped or added in that transaction, or
    added in a savepoint that rolled back, is never served from what was opened before."""
    from opseal.client.store import Store

    store = Store(tmp_path / "state.db", os.urandom(32))
    store.add_secret(OP, "seizures", 1, b"s1" * 16)
    with store.transaction():
        assert store.secret(OP, "seizures", 1) == b"s1" * 16
        assert store.secret(OP, "seizures", 2) is None
        store.add_secret(OP, "seizures", 2, b"s2" * 16)
        assert store.secret(OP, "seizures", 2) == b"s2" * 16
        assert store.secret(OP, "seizures", 1) == b"s1" * 16
        store.drop_secrets(OP, "seizures", before=2)  # forward secrecy: epoch 1 forgotten
        assert store.secret(OP, "seizures", 1) is None

        def add_then_fail() -> None:
            with store.transaction():
                store.add_secret(OP, "seizures", 3, b"s3" * 16)
                assert store.secret(OP, "seizures", 3) == b"s3" * 16
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            add_then_fail()
        assert store.secret(OP, "seizures", 3) is None
    assert store.secret(OP, "seizures", 1) is None
    assert store.secret(OP, "seizures", 2) == b"s2" * 16
    store.close()


def test_messages_added_in_a_transaction_follow_its_reads_commits_and_rollbacks(tmp_path):
    """A sync page's messages are inserted together, yet inside the transaction they are read
    back at once; a savepoint that rolled back drops only its own; a transaction that failed
    leaves none, and one that committed keeps them all."""
    from opseal.client.store import Store, StoredMessage

    def message(seq: int) -> StoredMessage:
        return StoredMessage(OP, "seizures", seq, f"m-{seq}", "dev-fr", "fr-customs", 1,
                             "seizure", "H0", False, 0, b"record %d" % seq)  # fmt: skip

    def seqs() -> list[int]:
        return [m.seq for m in store.messages(OP, "seizures")]

    def fail_page() -> None:
        with store.transaction():
            store.add_message(message(1))
            raise RuntimeError("the page failed")

    store = Store(tmp_path / "state.db", os.urandom(32))
    with pytest.raises(RuntimeError):
        fail_page()
    assert seqs() == []
    with store.transaction():
        store.add_message(message(1))
        assert store.message("m-1") == message(1)
        store.add_message(message(2))

        def add_then_fail() -> None:
            with store.transaction():
                store.add_message(message(3))
                assert [m.seq for m in store.messages_with_id("m-3")] == [3]
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            add_then_fail()
        store.add_message(message(4))
        assert seqs() == [1, 2, 4]
    store.close()
    store = Store(tmp_path / "state.db", os.urandom(32))  # a key that does not open them
    assert len(store.db.execute("SELECT * FROM messages").fetchall()) == 3
    store.close()
