"""The store's record index (issue 10): a submission looks for the earlier versions of the
records it sends without opening its organisation's whole history, and finds every one the
full scan found."""

from __future__ import annotations

import datetime
import json
import os
import uuid

from opseal.client import content, corrections
from opseal.client._demo_data import seizure_records
from opseal.client.store import Store, StoredMessage

OP, AREA, FR, DE = "op-stop-v", "seizures", "fr-customs", "de-customs"


def message(seq: int, org: str, content_type: str, payload: object) -> StoredMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return StoredMessage(OP, AREA, seq, mid(seq), f"dev-{org}", org, 1, content_type, "H0",
                         False, 0, body)  # fmt: skip


def mid(seq: int) -> str:
    return str(uuid.UUID(int=seq))


R1, R2 = seizure_records("FR", 2, datetime.date(2026, 11, 2))
CHANGED = {**R1, "case_ref": "FR-C-0001-B"}


def seizure(record: dict) -> dict:
    return content.seizure(record)


def correction(supersedes: str, record: dict) -> dict:
    return content.correction({"supersedes": supersedes, "record": record})


def seqs(messages: list[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


def test_the_index_finds_what_the_full_scan_finds_and_opens_only_what_is_new(tmp_path, monkeypatch):
    store = Store(tmp_path / "state.db", os.urandom(32))
    rid = R1["record_id"]
    with store.transaction():
        store.add_message(message(1, FR, "seizure", seizure(R1)))
        store.add_message(message(2, FR, "seizure", seizure(R2)))
        store.add_message(message(3, DE, "seizure", seizure(R1)))  # another org's, same id
        store.add_message(message(4, FR, "correction", correction(mid(1), CHANGED)))
        store.add_message(message(5, FR, "seizure", b"not json"))  # unreadable: always judged
        store.add_message(message(6, FR, "document", {"record_id": rid}))  # carries no record
    found = corrections.own_versions(store, OP, AREA, FR, [rid])
    assert seqs(found) == [1, 4, 5]
    full = corrections.submissions(store.messages(OP, AREA))
    again = [seizure(R1)]  # the first version again: a correction of the correction
    by_index = corrections.plan(OP, FR, again, corrections.submissions(found))
    assert by_index == corrections.plan(OP, FR, again, full)
    assert [old for old, _, _ in by_index.changed] == [mid(4)]

    assert store.unindexed_messages(OP, AREA) == []  # all seen: nothing is opened again
    with store.transaction():
        store.add_message(message(7, FR, "correction", correction(mid(4), R1)))
    assert seqs(store.unindexed_messages(OP, AREA)) == [7]
    both = [rid, R2["record_id"]]
    opened: list[int] = []
    open_row = store._message  # what a look-up decrypts: the new message and the versions
    monkeypatch.setattr(store, "_message", lambda row: opened.append(row[2]) or open_row(row))
    assert seqs(corrections.own_versions(store, OP, AREA, FR, both)) == [1, 2, 4, 5, 7]
    assert opened == [7, 1, 2, 4, 5, 7]  # not 3 (another org's) nor 6 (no record)
    monkeypatch.undo()
    assert seqs(corrections.own_versions(store, OP, AREA, DE, [rid])) == [3]  # not FR's unreadable
    store.close()


def test_index_rows_removed_from_the_file_are_rebuilt_not_taken_as_absent(tmp_path):
    """Deleting the index (or rows of it) hides no version: what the index has not seen is
    opened and indexed again."""
    store = Store(tmp_path / "state.db", os.urandom(32))
    with store.transaction():
        store.add_message(message(1, FR, "seizure", seizure(R1)))
    assert seqs(corrections.own_versions(store, OP, AREA, FR, [R1["record_id"]])) == [1]
    store.db.execute("DELETE FROM record_index")
    assert seqs(corrections.own_versions(store, OP, AREA, FR, [R1["record_id"]])) == [1]
    store.close()


def test_tags_say_nothing_without_the_store_key(tmp_path):
    """The index keeps keyed hashes: another profile's key gives other tags for the same
    record, so the file does not tell which message carries a guessed record id."""
    one = Store(tmp_path / "one.db", os.urandom(32))
    other = Store(tmp_path / "other.db", os.urandom(32))
    assert one.record_tag(FR, "R1") != other.record_tag(FR, "R1")
    assert one.record_tag(FR, "R1") != one.record_tag(DE, "R1")
    one.close()
    other.close()
