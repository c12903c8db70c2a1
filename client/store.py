"""The client's local store: one SQLite file in the profile directory.

It holds what the client has verified — charter versions, group states per epoch, epoch
secrets, decrypted messages, the replay tracker, sync positions, the last audit checkpoint —
and the outbox of submissions not yet confirmed. Secrets and plaintext are sealed at rest
with AES-256-GCM under the profile's store key (itself kept in a passphrase-sealed key file).

**Integrity** (issue 12): what the client's trust rests on is sealed too, each row under a
purpose naming where it belongs, so a row altered, swapped or moved no longer opens: the
pinned coordinator root (``pin/<op>``), charter versions (``charter/<op>/<version>``), group
states (``state/<op>/<area>/<epoch>``), held envelopes, and each message's metadata — sender,
organisation, epoch, handling code, ack flag, client time — sealed with its plaintext under
``message/<op>/<area>/<seq>/<id>/<content type>`` (the clear columns keep only what queries
select on, and the purpose binds them). A row that does not open is refused: the read raises
:class:`StoreTampered` (a message is left out) and an ``store-tampered`` warning is recorded,
even when the surrounding transaction rolls back. Stores written before this are sealed once,
at open (``meta`` key ``integrity``).

Long because: every table of the one SQLite file is read and written here, each with the seal
that guards it, so the schema and the purposes that bind its rows stay in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opseal.crypto.envelope import ReplayTracker
from opseal.crypto.keys import HmacKey, hkdf_sha256

from .errors import ClientError

__all__ = ["OutboxItem", "Store", "StoreTampered", "StoredMessage"]

INTEGRITY_VERSION = b"1"


class StoreTampered(ClientError):
    """A row of the local store does not open under the store key: it was altered."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS charters (op TEXT, version INTEGER, body BLOB NOT NULL,
    PRIMARY KEY (op, version));
CREATE TABLE IF NOT EXISTS pins (op TEXT PRIMARY KEY, root_key_id BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS states (op TEXT, area TEXT, epoch INTEGER, state BLOB NOT NULL,
    PRIMARY KEY (op, area, epoch));
CREATE TABLE IF NOT EXISTS init_keys (op TEXT, area TEXT, key_id BLOB, key BLOB NOT NULL,
    made INTEGER NOT NULL, PRIMARY KEY (op, area, key_id));
CREATE TABLE IF NOT EXISTS secrets (op TEXT, area TEXT, epoch INTEGER, secret BLOB NOT NULL,
    PRIMARY KEY (op, area, epoch));
CREATE TABLE IF NOT EXISTS counters (op TEXT, area TEXT, next INTEGER NOT NULL,
    PRIMARY KEY (op, area));
CREATE TABLE IF NOT EXISTS replay (op TEXT, area TEXT, sender TEXT, highest INTEGER NOT NULL,
    missing TEXT NOT NULL, PRIMARY KEY (op, area, sender));
CREATE TABLE IF NOT EXISTS positions (op TEXT, area TEXT, seq INTEGER NOT NULL,
    PRIMARY KEY (op, area));
CREATE TABLE IF NOT EXISTS messages (op TEXT, area TEXT, seq INTEGER, message_id TEXT NOT NULL,
    sender TEXT NOT NULL, org TEXT NOT NULL, epoch INTEGER NOT NULL, content_type TEXT NOT NULL,
    handling TEXT NOT NULL, requires_ack INTEGER NOT NULL, client_time_ms INTEGER NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (op, area, seq));
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (message_id);
CREATE TABLE IF NOT EXISTS record_index (op TEXT, area TEXT, seq INTEGER, tag BLOB,
    PRIMARY KEY (op, area, seq));
CREATE INDEX IF NOT EXISTS record_index_by_tag ON record_index (op, area, tag);
CREATE TABLE IF NOT EXISTS warnings (id INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, area TEXT,
    seq INTEGER, kind TEXT NOT NULL, message TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (message_id TEXT PRIMARY KEY, op TEXT NOT NULL,
    area TEXT NOT NULL, envelope BLOB NOT NULL, plaintext BLOB NOT NULL,
    content_type TEXT NOT NULL, handling TEXT NOT NULL, requires_ack INTEGER NOT NULL,
    status TEXT NOT NULL, seq INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, created_at);
CREATE TABLE IF NOT EXISTS revocations (digest BLOB PRIMARY KEY, org TEXT NOT NULL,
    statement BLOB NOT NULL, subject BLOB NOT NULL, issuer BLOB, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revocation_checks (digest BLOB, root BLOB, status TEXT NOT NULL,
    PRIMARY KEY (digest, root));
CREATE TABLE IF NOT EXISTS held (op TEXT, area TEXT, seq INTEGER, epoch INTEGER NOT NULL,
    body BLOB NOT NULL, PRIMARY KEY (op, area, seq));
CREATE TABLE IF NOT EXISTS missing (op TEXT, area TEXT, seq INTEGER,
    warning_id INTEGER NOT NULL, PRIMARY KEY (op, area, seq));
"""

MISSING_TRACKED = 10_000
"""The longest run of skipped entries whose refill is tracked (a longer gap stays open)."""


@dataclass(frozen=True)
class StoredMessage:
    """A message the client verified and decrypted."""

    op: str
    area: str
    seq: int
    message_id: str
    sender: str
    org: str
    epoch: int
    content_type: str
    handling: str
    requires_ack: bool
    client_time_ms: int
    plaintext: bytes

    def json(self) -> Any:
        """The plaintext parsed as JSON (``json.loads``'s result; msgspec's parser, five times
        faster, gives the same whenever it parses a text at all)."""
        return _json(self.plaintext)


@dataclass(frozen=True)
class OutboxItem:
    message_id: str
    op: str
    area: str
    envelope: bytes
    plaintext: bytes
    content_type: str
    handling: str
    requires_ack: bool
    attempts: int


def private_file(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only, unless it exists. SQLite gives
    its -wal and -shm files the database file's mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Store:
    """The profile's local database. Not shared between processes at the same time."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._index_key = HmacKey(hkdf_sha256(key, b"opseal store record index", 32))
        private_file(path)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # the outbox must survive a power cut
        # deleted init keys and epoch secrets are overwritten, not left in free pages
        self.db.execute("PRAGMA secure_delete=ON")
        # A first sync inserts ~100,000 messages, indexed by random message ids: with SQLite's
        # default 2 MB page cache each insert reads index pages back from the OS.
        self.db.execute("PRAGMA cache_size=-32768")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(warnings)")}
        if "resolved_at" not in columns:  # stores made before warnings could be resolved
            self.db.execute("ALTER TABLE warnings ADD COLUMN resolved_at INTEGER")
        self._tamper_warnings: list[tuple[str, str, int | None, str]] = []
        # Group states and epoch secrets already opened in the current write transaction:
        # a page of a sync reads the same few thousands of times. Kept only while this
        # process holds the write lock (BEGIN IMMEDIATE), so no other process can change them.
        self._opened: dict[tuple[str, str, str, int], bytes | None] | None = None
        # Likewise meta values and area positions (read for every entry of a page): positions
        # set in the transaction are written back at its end, or before a savepoint.
        self._meta: dict[str, bytes | None] = {}
        self._positions: dict[tuple[str, str], int] = {}
        self._unwritten: set[tuple[str, str]] = set()
        # Messages added in the transaction, inserted together before anything reads the
        # table and at its end: a sync page adds a thousand (one executemany, not 1,000 calls).
        self._unwritten_messages: list[tuple[Any, ...]] = []
        if self.get("integrity") != INTEGRITY_VERSION:
            with self.transaction():
                self._seal_legacy_rows()
                self.put("integrity", INTEGRITY_VERSION)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; inside another transaction it is a savepoint of it."""
        if self.db.in_transaction:
            self._write_positions()
            self._write_messages()
            self.db.execute("SAVEPOINT nested")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO nested")
                self.db.execute("RELEASE nested")
                self._forget_opened()
                self._forget_cached()
                raise
            self.db.execute("RELEASE nested")
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._opened = {}
        try:
            yield self.db
            self._write_positions()
            self._write_messages()
        except BaseException:
            self._opened = None
            self._forget_cached()
            self.db.execute("ROLLBACK")
            self._record_tampering()
            raise
        self._opened = None
        self._forget_cached()
        self.db.execute("COMMIT")
        self._record_tampering()

    def _forget_opened(self) -> None:
        if self._opened is not None:
            self._opened.clear()

    def _forget_cached(self) -> None:
        """Forget meta values, positions and messages read or set (those not written are
        dropped)."""
        self._meta.clear()
        self._positions.clear()
        self._unwritten.clear()
        self._unwritten_messages.clear()

    def _write_messages(self) -> None:
        if self._unwritten_messages:
            self.db.executemany(_INSERT_MESSAGE, self._unwritten_messages)
            self._unwritten_messages.clear()

    def _write_positions(self) -> None:
        if self._unwritten:
            self.db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                [(op, area, self._positions[(op, area)]) for op, area in self._unwritten],
            )
            self._unwritten.clear()

    def _memo(
        self, kind: str, op: str, area: str, epoch: int,
        read: Callable[[str, str, int], bytes | None],
    ) -> bytes | None:  # fmt: skip
        if self._opened is None:
            return read(op, area, epoch)
        key = (kind, op, area, epoch)
        if key not in self._opened:
            self._opened[key] = read(op, area, epoch)
        return self._opened[key]

    # -- sealing at rest -------------------------------------------------------------------
    def seal(self, data: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, purpose.encode())

    def open(self, blob: bytes, purpose: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], purpose.encode())
        except InvalidTag as exc:
            raise ClientError(f"local store: {purpose} does not open with this profile") from exc

    def _checked(self, blob: bytes, purpose: str, op: str, area: str = "") -> bytes:
        """``blob`` opened; a row that does not open is refused with a warning."""
        try:
            return self._aead.decrypt(blob[:12], blob[12:], purpose.encode())
        except (InvalidTag, ValueError) as exc:
            message = f"local store: the row {purpose} was altered and is refused"
            self._tamper_warnings.append((op, area, None, message))
            if not self.db.in_transaction:
                self._record_tampering()
            raise StoreTampered(message) from exc

    def _record_tampering(self) -> None:
        pending, self._tamper_warnings = self._tamper_warnings, []
        for op, area, seq, message in pending:
            self.warn(op, area, seq, "store-tampered", message)

    # -- small values ----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        if self._opened is not None and key in self._meta:
            return self._meta[key]
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        value: bytes | None = row[0] if row else None
        if self._opened is not None:
            self._meta[key] = value
        return value

    def put(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        self._meta.pop(key, None)

    # -- revocations (append-only: the server cannot withdraw one) --------------------------
    def add_revocation(
        self, org: str, statement: bytes, subject: bytes, issuer: bytes | None
    ) -> None:
        """Remember a served revocation, pending verification. Each distinct copy (statement
        with the certificates served with it) is its own row, so a copy refused for a bogus
        certificate does not keep out a later copy with the right one."""
        digest = hashlib.sha256(
            b"".join(
                len(part).to_bytes(4, "big") + part for part in (statement, subject, issuer or b"")
            )
            + (b"\x01" if issuer is not None else b"\x00")
        ).digest()
        self.db.execute(
            "INSERT OR IGNORE INTO revocations VALUES (?, ?, ?, ?, ?, 'pending')",
            (digest, org, statement, subject, issuer),
        )

    def unchecked_revocations(
        self, org: str, root: bytes
    ) -> list[tuple[bytes, bytes, bytes, bytes | None]]:
        """``(digest, statement, subject certificate, issuer certificate)`` of ``org``'s
        revocations not yet checked against the root key ``root``."""
        rows = self.db.execute(
            "SELECT digest, statement, subject, issuer FROM revocations WHERE org = ? AND "
            "digest NOT IN (SELECT digest FROM revocation_checks WHERE root = ?)",
            (org, root),
        )
        return list(rows)

    def check_revocation(self, digest: bytes, root: bytes, status: str) -> None:
        """Record that a revocation is ``verified`` or ``refused`` against the root key
        ``root``; a recorded check never changes."""
        self.db.execute(
            "INSERT OR IGNORE INTO revocation_checks VALUES (?, ?, ?)", (digest, root, status)
        )

    def verified_revocations(self) -> list[tuple[str, bytes, bytes]]:
        """``(org, statement, root key id)`` for each revocation verified against a root."""
        rows = self.db.execute(
            "SELECT r.org, r.statement, c.root FROM revocations r JOIN revocation_checks c "
            "ON c.digest = r.digest WHERE c.status = 'verified'"
        )
        return list(rows)

    # -- charters and pins -----------------------------------------------------------------
    def charters(self, op: str) -> list[bytes]:
        rows = self.db.execute(
            "SELECT version, body FROM charters WHERE op = ? ORDER BY version", (op,)
        )
        return [self._checked(body, f"charter/{op}/{v}", op) for v, body in rows]

    def add_charter(self, op: str, version: int, body: bytes) -> None:
        sealed = self.seal(body, f"charter/{op}/{version}")
        self.db.execute("INSERT OR IGNORE INTO charters VALUES (?, ?, ?)", (op, version, sealed))

    def pin(self, op: str) -> bytes | None:
        """The pinned coordinator root key id of ``op``; :class:`StoreTampered` if altered."""
        row = self.db.execute("SELECT root_key_id FROM pins WHERE op = ?", (op,)).fetchone()
        return self._checked(row[0], f"pin/{op}", op) if row else None

    def unpin(self, op: str) -> None:
        self.db.execute("DELETE FROM pins WHERE op = ?", (op,))

    def set_pin(self, op: str, key_id: bytes) -> None:
        sealed = self.seal(key_id, f"pin/{op}")
        self.db.execute("INSERT OR REPLACE INTO pins VALUES (?, ?)", (op, sealed))

    # -- group states and secrets ----------------------------------------------------------
    def latest_state(self, op: str, area: str) -> tuple[int, bytes] | None:
        row = self.db.execute(
            "SELECT epoch, state FROM states WHERE op = ? AND area = ? ORDER BY epoch DESC LIMIT 1",
            (op, area),
        ).fetchone()
        return (row[0], self._open_state(op, area, row[0], row[1])) if row else None

    def _open_state(self, op: str, area: str, epoch: int, blob: bytes) -> bytes:
        return self._checked(blob, f"state/{op}/{area}/{epoch}", op, area)

    def state(self, op: str, area: str, epoch: int) -> bytes | None:
        return self._memo("state", op, area, epoch, self._read_state)

    def _read_state(self, op: str, area: str, epoch: int) -> bytes | None:
        row = self.db.execute(
            "SELECT state FROM states WHERE op = ? AND area = ? AND epoch = ?", (op, area, epoch)
        ).fetchone()
        return self._open_state(op, area, epoch, row[0]) if row else None

    def states(self, op: str, area: str) -> list[tuple[int, bytes]]:
        """Every stored ``(epoch, state)`` of the area, oldest first."""
        rows = self.db.execute(
            "SELECT epoch, state FROM states WHERE op = ? AND area = ? ORDER BY epoch", (op, area)
        )
        return [(e, self._open_state(op, area, e, body)) for e, body in rows]

    def add_state(self, op: str, area: str, epoch: int, state: bytes) -> None:
        self._forget_opened()
        sealed = self.seal(state, f"state/{op}/{area}/{epoch}")
        self.db.execute(
            "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)", (op, area, epoch, sealed)
        )

    def secret(self, op: str, area: str, epoch: int) -> bytes | None:
        return self._memo("secret", op, area, epoch, self._read_secret)

    def _read_secret(self, op: str, area: str, epoch: int) -> bytes | None:
        row = self.db.execute(
            "SELECT secret FROM secrets WHERE op = ? AND area = ? AND epoch = ?", (op, area, epoch)
        ).fetchone()
        return self.open(row[0], f"secret/{op}/{area}/{epoch}") if row else None

    def secrets(self, op: str, area: str) -> dict[int, bytes]:
        rows = self.db.execute(
            "SELECT epoch, secret FROM secrets WHERE op = ? AND area = ?", (op, area)
        )
        return {e: self.open(s, f"secret/{op}/{area}/{e}") for e, s in rows}

    def add_secret(self, op: str, area: str, epoch: int, secret: bytes) -> None:
        self._forget_opened()
        sealed = self.seal(secret, f"secret/{op}/{area}/{epoch}")
        self.db.execute(
            "INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?)", (op, area, epoch, sealed)
        )

    def drop_secrets(self, op: str, area: str, before: int) -> int:
        """Delete the epoch secrets of ``op``/``area`` older than epoch ``before``."""
        self._forget_opened()
        cursor = self.db.execute(
            "DELETE FROM secrets WHERE op = ? AND area = ? AND epoch < ?", (op, area, before)
        )
        return cursor.rowcount

    # -- init keys (short-lived HPKE keys epoch secrets are sealed to) ----------------------
    def add_init_key(self, op: str, area: str, key_id: bytes, key: bytes, made: int) -> None:
        sealed = self.seal(key, f"init-key/{op}/{area}/{key_id.hex()}")
        self.db.execute(
            "INSERT INTO init_keys VALUES (?, ?, ?, ?, ?)", (op, area, key_id, sealed, made)
        )

    def init_key_made(self, op: str, area: str, key_id: bytes) -> int | None:
        """When this device made the init key ``key_id`` of ``op``/``area`` (None: not held)."""
        row = self.db.execute(
            "SELECT made FROM init_keys WHERE op = ? AND area = ? AND key_id = ?",
            (op, area, key_id),
        ).fetchone()
        return int(row[0]) if row else None

    def init_keys(self, op: str, area: str) -> list[bytes]:
        rows = self.db.execute(
            "SELECT key_id, key FROM init_keys WHERE op = ? AND area = ?", (op, area)
        )
        return [self.open(k, f"init-key/{op}/{area}/{i.hex()}") for i, k in rows]

    def drop_init_keys(self, op: str, area: str, keep: bytes | None = None) -> None:
        """Delete the init keys of ``op``/``area``, all but ``keep`` (a key id) if given."""
        self.db.execute(
            "DELETE FROM init_keys WHERE op = ? AND area = ? AND key_id IS NOT ?",
            (op, area, keep),
        )

    def areas(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT DISTINCT op, area FROM states")]

    # -- counters, replay tracking, positions ----------------------------------------------
    def take_counters(self, op: str, area: str, count: int) -> int:
        """Reserve ``count`` consecutive counters for this device in an area; returns the first."""
        row = self.db.execute(
            "SELECT next FROM counters WHERE op = ? AND area = ?", (op, area)
        ).fetchone()
        first = row[0] if row else 1
        self.db.execute(
            "INSERT OR REPLACE INTO counters VALUES (?, ?, ?)", (op, area, first + count)
        )
        return first

    def load_tracker(self) -> ReplayTracker:
        tracker = ReplayTracker()
        for op, area, sender, highest, missing in self.db.execute("SELECT * FROM replay"):
            tracker.restore(op, area, sender, highest, json.loads(missing))
        return tracker

    def save_tracker(self, tracker: ReplayTracker) -> None:
        """Persist the senders whose record changed since the last save (runs of missing
        counters, compact: a few hundred bytes per sender however far its counters jump)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO replay VALUES (?, ?, ?, ?, ?)",
            [
                (op, area, sender, highest, json.dumps(missing, separators=(",", ":")))
                for op, area, sender, highest, missing in tracker.take_changes()
            ],
        )

    def position(self, op: str, area: str) -> int:
        if self._opened is not None and (op, area) in self._positions:
            return self._positions[(op, area)]
        row = self.db.execute(
            "SELECT seq FROM positions WHERE op = ? AND area = ?", (op, area)
        ).fetchone()
        seq: int = row[0] if row else 0
        if self._opened is not None:
            self._positions[(op, area)] = seq
        return seq

    def set_position(self, op: str, area: str, seq: int) -> None:
        if self._opened is None:
            self.db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (op, area, seq))
            return
        self._positions[(op, area)] = seq
        self._unwritten.add((op, area))

    # -- messages and warnings -------------------------------------------------------------
    def add_message(self, m: StoredMessage) -> None:
        """Store a verified message: its metadata and plaintext sealed together, the clear
        columns (place, id, content type) bound by the seal's purpose."""
        meta = msgspec.json.encode(
            [m.sender, m.org, m.epoch, m.handling, m.requires_ack, m.client_time_ms]
        )
        body = self.seal(struct.pack(">I", len(meta)) + meta + m.plaintext, _message_purpose(m))
        row = (m.op, m.area, m.seq, m.message_id, m.content_type, body)
        if self._opened is not None:  # in a transaction: inserted with the others
            self._unwritten_messages.append(row)
        else:
            self.db.execute(_INSERT_MESSAGE, row)

    def messages(
        self, op: str, area: str | None = None, *, after: int = 0, content_type: str | None = None
    ) -> list[StoredMessage]:
        """Stored messages in area and sequence order; an altered row is left out (warned)."""
        self._write_messages()
        query = "SELECT op, area, seq, message_id, content_type, body FROM messages "
        query += "WHERE op = ? AND seq > ?"
        args: list[Any] = [op, after]
        if area is not None:
            query += " AND area = ?"
            args.append(area)
        if content_type is not None:
            query += " AND content_type = ?"
            args.append(content_type)
        return self._opened_rows(self.db.execute(query + " ORDER BY area, seq", args).fetchall())

    def message(self, message_id: str) -> StoredMessage | None:
        """The stored message ``message_id``; None if unknown or altered (warned)."""
        self._write_messages()
        row = self.db.execute(
            "SELECT op, area, seq, message_id, content_type, body FROM messages "
            "WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        try:
            return self._message(row)
        except StoreTampered:
            return None

    def messages_with_id(self, message_id: str) -> list[StoredMessage]:
        """Every stored message under ``message_id`` (ids are unique per operation, area and
        sender, so two senders may share one), in place order; altered rows left out."""
        return self.messages_with_ids([message_id])

    def messages_with_ids(self, message_ids: Sequence[str]) -> list[StoredMessage]:
        """:meth:`messages_with_id` for several ids at once, in place order."""
        self._write_messages()
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            rows += self.db.execute(
                "SELECT op, area, seq, message_id, content_type, body FROM messages "  # noqa: S608
                f"WHERE message_id IN ({','.join('?' * len(chunk))})",
                list(chunk),
            ).fetchall()
        return self._opened_rows(sorted(rows, key=lambda row: row[:3]))

    def _message(self, row: tuple[Any, ...]) -> StoredMessage:
        op, area, seq, message_id, content_type, body = row
        purpose = f"message/{op}/{area}/{seq}/{message_id}/{content_type}"
        opened = self._checked(body, purpose, op, area)
        (size,) = struct.unpack(">I", opened[:4])
        sender, org, epoch, handling, requires_ack, client_time_ms = _json(opened[4 : 4 + size])
        return StoredMessage(
            op, area, seq, message_id, sender, org, epoch, content_type, handling,
            bool(requires_ack), client_time_ms, opened[4 + size :],
        )  # fmt: skip

    # -- which stored messages carry which records ----------------------------------------
    # A submission looks for the earlier versions of the records it sends among its
    # organisation's messages in the area: opening all of them cost ~16 µs each, per command
    # (0.16 s for 10,000 records, 1.6 s for 100,000). The index says which message carries
    # which record, by a keyed hash of organisation and record id (the file alone does not
    # tell), and is brought up to date with the messages it has not seen (design §14).
    def record_tag(self, org: str, record_id: str | None) -> bytes:
        """The index's key for ``org``'s record ``record_id`` (None: a record of ``org`` that
        cannot be read, judged with every look-up of the organisation's records)."""
        return self._index_key.digest(json.dumps([org, record_id]).encode())[:16]

    def unindexed_messages(self, op: str, area: str) -> list[StoredMessage]:
        """The area's stored messages the record index has not seen yet, in sequence order
        (an altered row is left out, warned)."""
        self._write_messages()
        rows = self.db.execute(
            "SELECT op, area, seq, message_id, content_type, body FROM messages m "
            "WHERE op = ? AND area = ? AND NOT EXISTS (SELECT 1 FROM record_index r "
            "WHERE r.op = m.op AND r.area = m.area AND r.seq = m.seq) ORDER BY seq",
            (op, area),
        ).fetchall()
        return self._opened_rows(rows)

    def index_records(self, op: str, area: str, tags: list[tuple[int, bytes]]) -> None:
        """Record ``(seq, tag)`` for messages of the area: the :meth:`record_tag` of the record
        a message carries, ``b""`` if it carries none."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO record_index VALUES (?, ?, ?, ?)",
                [(op, area, seq, tag) for seq, tag in tags],
            )

    def messages_carrying(self, op: str, area: str, tags: list[bytes]) -> list[StoredMessage]:
        """The area's indexed messages that carry one of ``tags``, in sequence order (an
        altered row is left out, warned)."""
        self._write_messages()
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(tags), 500):  # a message has one tag: no row comes twice
            chunk = tags[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows += self.db.execute(
                "SELECT m.op, m.area, m.seq, m.message_id, m.content_type, m.body "  # noqa: S608
                "FROM record_index r JOIN messages m "
                "ON m.op = r.op AND m.area = r.area AND m.seq = r.seq "
                f"WHERE r.op = ? AND r.area = ? AND r.tag IN ({marks})",
                [op, area, *chunk],
            ).fetchall()
        return self._opened_rows(sorted(rows, key=lambda row: row[2]))

    def _opened_rows(self, rows: list[tuple[Any, ...]]) -> list[StoredMessage]:
        """The messages of ``rows``; an altered row is left out (warned)."""
        out = []
        for row in rows:
            try:
                out.append(self._message(row))
            except StoreTampered:
                continue
        return out

    def warn(self, op: str, area: str, seq: int | None, kind: str, message: str) -> int:
        """Record a warning; returns its id."""
        cursor = self.db.execute(
            "INSERT INTO warnings (op, area, seq, kind, message, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (op, area, seq, kind, message, int(time.time())),
        )
        return int(cursor.lastrowid or 0)

    # -- entries the server skipped (a "gap" warning each) ---------------------------------
    def add_missing(self, op: str, area: str, first: int, last: int, warning_id: int) -> None:
        """Entries ``first..last`` were skipped: the gap's warning stays open until each
        arrives (a gap longer than :data:`MISSING_TRACKED` is not tracked)."""
        if last - first + 1 > MISSING_TRACKED:
            return
        self.db.executemany(
            "INSERT OR IGNORE INTO missing VALUES (?, ?, ?, ?)",
            [(op, area, seq, warning_id) for seq in range(first, last + 1)],
        )

    def is_missing(self, op: str, area: str, seq: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM missing WHERE op = ? AND area = ? AND seq = ?", (op, area, seq)
        ).fetchone()
        return row is not None

    def missing(self) -> list[tuple[str, str, int, int]]:
        """Per area with skipped entries: (op, area, first, last) still missing."""
        rows = self.db.execute(
            "SELECT op, area, MIN(seq), MAX(seq) FROM missing GROUP BY op, area ORDER BY op, area"
        )
        return [tuple(row) for row in rows]

    def fill_missing(self, op: str, area: str, seq: int) -> None:
        """A skipped entry arrived; its gap's warning is resolved once none is missing."""
        row = self.db.execute(
            "DELETE FROM missing WHERE op = ? AND area = ? AND seq = ? RETURNING warning_id",
            (op, area, seq),
        ).fetchone()
        if row is None:
            return
        left = self.db.execute("SELECT 1 FROM missing WHERE warning_id = ?", row).fetchone()
        if left is None:
            self.db.execute(
                "UPDATE warnings SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
                (int(time.time()), row[0]),
            )

    def warnings(self, since_id: int = 0) -> list[tuple[int, str, str, int | None, str, str]]:
        """The open warnings after ``since_id`` (resolved ones are left out)."""
        rows = self.db.execute(
            "SELECT id, op, area, seq, kind, message FROM warnings "
            "WHERE id > ? AND resolved_at IS NULL ORDER BY id",
            (since_id,),
        )
        return [tuple(row) for row in rows]

    def resolve_warnings(self, op: str, kind: str, area: str | None = None) -> int:
        """Mark the open ``kind`` warnings of ``op`` (and ``area``) resolved: what they
        reported has since been set right. Returns how many."""
        query = (
            "UPDATE warnings SET resolved_at = ? WHERE resolved_at IS NULL AND op = ? AND kind = ?"
        )
        args: list[Any] = [int(time.time()), op, kind]
        if area is not None:
            query += " AND area = ?"
            args.append(area)
        return self.db.execute(query, args).rowcount

    # -- outbox ----------------------------------------------------------------------------
    def enqueue(self, items: list[OutboxItem]) -> None:
        """Record submissions before anything is sent (in the caller's transaction)."""
        now = int(time.time())
        self.db.executemany(
            "INSERT INTO outbox (message_id, op, area, envelope, plaintext, content_type, "
            "handling, requires_ack, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            [
                (
                    i.message_id,
                    i.op,
                    i.area,
                    i.envelope,
                    self.seal(i.plaintext, f"outbox/{i.message_id}"),
                    i.content_type,
                    i.handling,
                    int(i.requires_ack),
                    now,
                )
                for i in items
            ],
        )

    def pending(
        self, limit: int = 500, op: str | None = None, area: str | None = None
    ) -> list[OutboxItem]:
        query = (
            "SELECT message_id, op, area, envelope, plaintext, content_type, handling, "
            "requires_ack, attempts FROM outbox WHERE status = 'pending'"
        )
        args: list[Any] = []
        if op is not None and area is not None:
            query += " AND op = ? AND area = ?"
            args += [op, area]
        rows = self.db.execute(query + " ORDER BY created_at, rowid LIMIT ?", [*args, limit])
        return [
            OutboxItem(
                r[0],
                r[1],
                r[2],
                r[3],
                self.open(r[4], f"outbox/{r[0]}"),
                r[5],
                r[6],
                bool(r[7]),
                r[8],
            )
            for r in rows
        ]

    def mark_sent(self, pairs: list[tuple[str, int]]) -> None:
        self.db.executemany(
            "UPDATE outbox SET status = 'sent', seq = ? WHERE message_id = ?",
            [(seq, mid) for mid, seq in pairs],
        )

    def mark_refused(self, message_ids: list[str], error: str) -> None:
        """Submissions the server refused for good: kept, shown, never sent again."""
        self.db.executemany(
            "UPDATE outbox SET status = 'refused', last_error = ? WHERE message_id = ?",
            [(error, m) for m in message_ids],
        )

    def outbox_refused(self, message_ids: list[str]) -> list[tuple[str, str, str, str]]:
        """Of ``message_ids``, those the server refused: (message id, op, area, error)."""
        found: list[tuple[str, str, str, str]] = []
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += self.db.execute(
                "SELECT message_id, op, area, COALESCE(last_error, '') FROM outbox "  # noqa: S608
                f"WHERE status = 'refused' AND message_id IN ({marks})",
                chunk,
            ).fetchall()
        return found

    def outbox_pending_count(self) -> int:
        """How many submissions wait to be sent."""
        row = self.db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()
        return int(row[0])

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        self._meta.pop(key, None)

    # -- messages held until their epoch secret arrives ------------------------------------
    def hold(self, op: str, area: str, seq: int, epoch: int, body: bytes) -> None:
        sealed = self.seal(body, f"held/{op}/{area}/{seq}/{epoch}")
        self.db.execute(
            "INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?)", (op, area, seq, epoch, sealed)
        )

    def held(self, op: str, area: str) -> list[tuple[int, int, bytes]]:
        rows = self.db.execute(
            "SELECT seq, epoch, body FROM held WHERE op = ? AND area = ? ORDER BY seq", (op, area)
        ).fetchall()
        return [
            (seq, epoch, self._checked(body, f"held/{op}/{area}/{seq}/{epoch}", op, area))
            for seq, epoch, body in rows
        ]

    def release(self, op: str, area: str, seq: int) -> None:
        self.db.execute("DELETE FROM held WHERE op = ? AND area = ? AND seq = ?", (op, area, seq))

    def mark_attempt(self, message_ids: list[str], error: str) -> None:
        self.db.executemany(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE message_id = ?",
            [(error, m) for m in message_ids],
        )

    def replace_envelope(self, message_id: str, envelope: bytes) -> None:
        self.db.execute(
            "UPDATE outbox SET envelope = ? WHERE message_id = ?", (envelope, message_id)
        )

    def outbox_summary(self) -> list[tuple[str, str, str, int, int, str | None]]:
        """Pending submissions per (operation, area): count, attempts, last error."""
        rows = self.db.execute(
            "SELECT op, area, status, COUNT(*), MAX(attempts), MAX(last_error) FROM outbox "
            "GROUP BY op, area, status ORDER BY op, area, status"
        )
        return [tuple(row) for row in rows]

    # -- stores written before rows were sealed --------------------------------------------
    def _seal_legacy_rows(self) -> None:
        """Seal, once, the rows an older version kept in clear (trusted as they stand); a row
        that already opens under its purpose is left as it is."""
        db = self.db
        for op, key_id in db.execute("SELECT op, root_key_id FROM pins").fetchall():
            if not self._opens(key_id, f"pin/{op}"):
                self.set_pin(op, key_id)
        for op, version, body in db.execute("SELECT * FROM charters").fetchall():
            if not self._opens(body, f"charter/{op}/{version}"):
                sealed = self.seal(body, f"charter/{op}/{version}")
                db.execute(
                    "UPDATE charters SET body = ? WHERE op = ? AND version = ?",
                    (sealed, op, version),
                )
        for op, area, epoch, state in db.execute("SELECT * FROM states").fetchall():
            if not self._opens(state, f"state/{op}/{area}/{epoch}"):
                self.add_state(op, area, epoch, state)
        for op, area, seq, epoch, body in db.execute("SELECT * FROM held").fetchall():
            if not self._opens(body, f"held/{op}/{area}/{seq}/{epoch}"):
                self.hold(op, area, seq, epoch, body)
        for row in db.execute("SELECT * FROM messages").fetchall():
            *fields, body = row
            if self._opens(body, f"message/{fields[3]}"):  # the older layout
                fields[9] = bool(fields[9])
                plaintext = self.open(body, f"message/{fields[3]}")
                message = StoredMessage(*[*fields, plaintext])
                db.execute("DELETE FROM messages WHERE message_id = ?", (message.message_id,))
                self.add_message(message)

    def _opens(self, blob: bytes, purpose: str) -> bool:
        try:
            self._aead.decrypt(blob[:12], blob[12:], purpose.encode())
        except (InvalidTag, ValueError):
            return False
        return True


def _json(data: bytes) -> Any:
    """``json.loads(data)``, by msgspec's faster parser whenever it parses the text at all."""
    try:
        return msgspec.json.decode(data)
    except msgspec.MsgspecError:  # NaN, lone surrogates, a byte order mark, UTF-16...
        return json.loads(data)


_INSERT_MESSAGE = "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, '', '', 0, ?, '', 0, 0, ?)"


def _message_purpose(m: StoredMessage) -> str:
    return f"message/{m.op}/{m.area}/{m.seq}/{m.message_id}/{m.content_type}"
