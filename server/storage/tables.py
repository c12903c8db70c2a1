"""SQLAlchemy tables: one schema for SQLite and PostgreSQL (design §9).

Byte strings (certificates, commits, envelopes, signatures) are stored exactly as the crypto
core encoded them; the server re-verifies what it must and never holds plaintext. Per-area
events (messages, commits, key packages, receipts) share one gap-free sequence kept in
``areas.next_seq`` and assigned inside the storing transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 128  # identifiers chosen by clients are bounded in length


def _time(name: str, nullable: bool = False) -> Column[int]:
    return Column(name, BigInteger, nullable=nullable)


instance = Table(
    "instance",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("instance_id", String(ID), nullable=False),
    Column("log_private_key", LargeBinary, nullable=False),
    Column("log_public_key", LargeBinary, nullable=False),
    Column("token_key", LargeBinary, nullable=False),
    _time("created_at"),
)

organisations = Table(
    "organisations",
    metadata,
    Column("org_id", String(ID), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("root_key", LargeBinary, nullable=True),
    Column("can_coordinate", Boolean, nullable=False),
    _time("created_at"),
)

users = Table(
    "users",
    metadata,
    Column("org_id", String(ID), ForeignKey("organisations.org_id"), primary_key=True),
    Column("user_id", String(ID), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    Column("identity_key_id", LargeBinary, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    _time("expires_at"),
    _time("revoked_at", nullable=True),
    _time("created_at"),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(ID), primary_key=True),
    Column("org_id", String(ID), nullable=False),
    Column("user_id", String(ID), nullable=False),
    Column("signing_key", LargeBinary, nullable=False),
    Column("key_id", LargeBinary, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    _time("expires_at"),
    _time("revoked_at", nullable=True),
    _time("created_at"),
    ForeignKeyConstraint(["org_id", "user_id"], ["users.org_id", "users.user_id"]),
)

revocations = Table(
    "revocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(ID), ForeignKey("organisations.org_id"), nullable=False),
    Column("revoked_key_id", LargeBinary, nullable=False, index=True),
    Column("statement", LargeBinary, nullable=False),
    _time("created_at"),
)

user_certificates = Table(
    "user_certificates",
    metadata,
    Column("org_id", String(ID), ForeignKey("organisations.org_id"), primary_key=True),
    Column("identity_key_id", LargeBinary, primary_key=True),
    Column("user_id", String(ID), nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    _time("created_at"),
)
"""Every user certificate ever registered (a renewal keeps the old one), so that any key ever
certified can be revoked and its revocation proved against its own certificate."""

enrolment_codes = Table(
    "enrolment_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("org_id", String(ID), ForeignKey("organisations.org_id"), nullable=False),
    _time("expires_at"),
    _time("used_at", nullable=True),
    _time("created_at"),
)

challenges = Table(
    "challenges",
    metadata,
    Column("challenge", LargeBinary, primary_key=True),
    Column("device_id", String(ID), nullable=False),
    _time("expires_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("device_id", String(ID), ForeignKey("devices.device_id"), nullable=False, index=True),
    _time("expires_at"),
    _time("created_at"),
)

operations = Table(
    "operations",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("code", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("phase", String(16), nullable=False),
    _time("starts_at"),
    _time("ends_at"),
    Column("retention_days", Integer, nullable=False),
    Column("charter_version", Integer, nullable=False),
    Column("created_by", String(ID), nullable=False),
    _time("created_at"),
)

charter_versions = Table(
    "charter_versions",
    metadata,
    Column("operation_id", String(ID), ForeignKey("operations.operation_id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
    Column("body", LargeBinary, nullable=False),
    _time("created_at"),
)

operation_members = Table(
    "operation_members",
    metadata,
    Column("operation_id", String(ID), ForeignKey("operations.operation_id"), primary_key=True),
    Column("org_id", String(ID), primary_key=True),
    Column("role", String(16), nullable=False),
    Index("ix_operation_members_org", "org_id"),
)

areas = Table(
    "areas",
    metadata,
    Column("operation_id", String(ID), ForeignKey("operations.operation_id"), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("epoch", BigInteger, nullable=True),
    Column("state", LargeBinary, nullable=True),
    Column("next_seq", BigInteger, nullable=False),
    _time("created_at"),
)

area_members = Table(
    "area_members",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("device_id", String(ID), primary_key=True),
    ForeignKeyConstraint(["operation_id", "area"], ["areas.operation_id", "areas.area"]),
    Index("ix_area_members_device", "device_id"),
)

events = Table(
    "events",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("device_id", String(ID), nullable=False),
    Column("epoch", BigInteger, nullable=True),
    Column("message_id", String(36), nullable=True),
    Column("body", LargeBinary, nullable=False),
    _time("created_at"),
    ForeignKeyConstraint(["operation_id", "area"], ["areas.operation_id", "areas.area"]),
    # Message ids are idempotency keys of their sender only (design §15 "Provenance"): another
    # device using the same id blocks nothing. Every look-up by message id names the sender
    # (receipts too, since 0004), so this index serves them all.
    UniqueConstraint(
        "operation_id", "area", "device_id", "message_id", name="uq_events_sender_message_id"
    ),
    # Each sender's latest message (the counter checks, on every post): one backward step.
    Index("ix_events_sender_seq", "operation_id", "area", "device_id", "seq"),
)

commits = Table(
    "commits",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("epoch", BigInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    ForeignKeyConstraint(["operation_id", "area"], ["areas.operation_id", "areas.area"]),
)

commit_secrets = Table(
    "commit_secrets",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("epoch", BigInteger, primary_key=True),
    Column("device_id", String(ID), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["operation_id", "area", "epoch"], ["commits.operation_id", "commits.area", "commits.epoch"]
    ),
)

key_packages = Table(
    "key_packages",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("device_id", String(ID), primary_key=True),
    Column("body", LargeBinary, nullable=False),
    Column("seq", BigInteger, nullable=False),
    _time("created_at"),
    ForeignKeyConstraint(["operation_id", "area"], ["areas.operation_id", "areas.area"]),
)

blobs = Table(
    "blobs",
    metadata,
    Column("blob_id", String(36), primary_key=True),
    Column("operation_id", String(ID), nullable=False),
    Column("area", String(64), nullable=False),
    Column("device_id", String(ID), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", LargeBinary, nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("complete", Boolean, nullable=False),
    _time("created_at"),
    ForeignKeyConstraint(["operation_id", "area"], ["areas.operation_id", "areas.area"]),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("blob_id", String(36), ForeignKey("blobs.blob_id"), primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("data", LargeBinary, nullable=True),  # the bytes, with the database blob store
    Column("length", BigInteger, nullable=True),  # set on every row written since 0011
    Column("object_key", String(96), nullable=True),  # the bytes' key in an external store
)

# A receipt names its message as the server keeps it unique: (operation, area, sending
# device, message id) — two senders' messages under one id have receipts of their own.
receipts = Table(
    "receipts",
    metadata,
    Column("operation_id", String(ID), primary_key=True),
    Column("area", String(64), primary_key=True),
    Column("sender_id", String(ID), primary_key=True),
    Column("message_id", String(36), primary_key=True),
    Column("device_id", String(ID), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("org_id", String(ID), nullable=False),
    Column("statement", LargeBinary, nullable=False),
    _time("created_at"),
)

audit_leaves = Table(
    "audit_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    _time("created_at"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
    _time("created_at"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
)
