"""The client's local store: one SQLite file in the profile directory.

It holds what the client has verified — charter versions, group states per epoch, epoch
secrets, decrypted messages, the replay tracker, sync positions, the last audit checkpoint —
and the outbox of submissions not yet confirmed. Secrets and plaintext are sealed at rest
with AES-256-GCM under the profile's store key (itself kept in a passphrase-sealed key file).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from opseal.crypto.envelope import ReplayTracker

from .errors import ClientError

__all__ = ["OutboxItem", "Store", "StoredMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS charters (op TEXT, version INTEGER, body BLOB NOT NULL,
    PRIMARY KEY (op, version));
CREATE TABLE IF NOT EXISTS pins (op TEXT PRIMARY KEY, root_key_id BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS states (op TEXT, area TEXT, epoch INTEGER, state BLOB NOT NULL,
    PRIMARY KEY (op, area, epoch));
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
"""


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
        return json.loads(self.plaintext)


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


class Store:
    """The profile's local database. Not shared between processes at the same time."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # the outbox must survive a power cut
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; inside another transaction it is a savepoint of it."""
        if self.db.in_transaction:
            self.db.execute("SAVEPOINT nested")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO nested")
                self.db.execute("RELEASE nested")
                raise
            self.db.execute("RELEASE nested")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- sealing at rest -------------------------------------------------------------------
    def seal(self, data: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, purpose.encode())

    def open(self, blob: bytes, purpose: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], purpose.encode())
        except InvalidTag as exc:
            raise ClientError(f"local store: {purpose} does not open with this profile") from exc

    # -- small values ----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

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
        rows = self.db.execute("SELECT body FROM charters WHERE op = ? ORDER BY version", (op,))
        return [row[0] for row in rows]

    def add_charter(self, op: str, version: int, body: bytes) -> None:
        self.db.execute("INSERT OR IGNORE INTO charters VALUES (?, ?, ?)", (op, version, body))

    def pin(self, op: str) -> bytes | None:
        row = self.db.execute("SELECT root_key_id FROM pins WHERE op = ?", (op,)).fetchone()
        return row[0] if row else None

    def set_pin(self, op: str, key_id: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO pins VALUES (?, ?)", (op, key_id))

    # -- group states and secrets ----------------------------------------------------------
    def latest_state(self, op: str, area: str) -> tuple[int, bytes] | None:
        row = self.db.execute(
            "SELECT epoch, state FROM states WHERE op = ? AND area = ? ORDER BY epoch DESC LIMIT 1",
            (op, area),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def state(self, op: str, area: str, epoch: int) -> bytes | None:
        row = self.db.execute(
            "SELECT state FROM states WHERE op = ? AND area = ? AND epoch = ?", (op, area, epoch)
        ).fetchone()
        return row[0] if row else None

    def add_state(self, op: str, area: str, epoch: int, state: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)", (op, area, epoch, state)
        )

    def secret(self, op: str, area: str, epoch: int) -> bytes | None:
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
        sealed = self.seal(secret, f"secret/{op}/{area}/{epoch}")
        self.db.execute(
            "INSERT OR REPLACE INTO secrets VALUES (?, ?, ?, ?)", (op, area, epoch, sealed)
        )

    def areas(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.db.execute("SELECT DISTINCT op, area FROM states")]  # type: ignore[misc]

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
        row = self.db.execute(
            "SELECT seq FROM positions WHERE op = ? AND area = ?", (op, area)
        ).fetchone()
        return row[0] if row else 0

    def set_position(self, op: str, area: str, seq: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (op, area, seq))

    # -- messages and warnings -------------------------------------------------------------
    def add_message(self, m: StoredMessage) -> None:
        body = self.seal(m.plaintext, f"message/{m.message_id}")
        self.db.execute(
            "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.op,
                m.area,
                m.seq,
                m.message_id,
                m.sender,
                m.org,
                m.epoch,
                m.content_type,
                m.handling,
                int(m.requires_ack),
                m.client_time_ms,
                body,
            ),
        )

    def messages(
        self, op: str, area: str | None = None, *, after: int = 0, content_type: str | None = None
    ) -> list[StoredMessage]:
        query = "SELECT * FROM messages WHERE op = ? AND seq > ?"
        args: list[Any] = [op, after]
        if area is not None:
            query += " AND area = ?"
            args.append(area)
        if content_type is not None:
            query += " AND content_type = ?"
            args.append(content_type)
        rows = self.db.execute(query + " ORDER BY area, seq", args)
        return [self._message(row) for row in rows]

    def message(self, message_id: str) -> StoredMessage | None:
        row = self.db.execute(
            "SELECT * FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return self._message(row) if row else None

    def _message(self, row: tuple[Any, ...]) -> StoredMessage:
        *fields, body = row
        fields[9] = bool(fields[9])
        return StoredMessage(*fields, self.open(body, f"message/{fields[3]}"))

    def warn(self, op: str, area: str, seq: int | None, kind: str, message: str) -> None:
        self.db.execute(
            "INSERT INTO warnings (op, area, seq, kind, message, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (op, area, seq, kind, message, int(time.time())),
        )

    def warnings(self, since_id: int = 0) -> list[tuple[int, str, str, int | None, str, str]]:
        rows = self.db.execute(
            "SELECT id, op, area, seq, kind, message FROM warnings WHERE id > ? ORDER BY id",
            (since_id,),
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

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

    def delete(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- messages held until their epoch secret arrives ------------------------------------
    def hold(self, op: str, area: str, seq: int, epoch: int, body: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?)", (op, area, seq, epoch, body)
        )

    def held(self, op: str, area: str) -> list[tuple[int, int, bytes]]:
        rows = self.db.execute(
            "SELECT seq, epoch, body FROM held WHERE op = ? AND area = ? ORDER BY seq", (op, area)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

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
        return [tuple(row) for row in rows]  # type: ignore[misc]
