"""events indexed for what is asked on every post: each sender's entries by sequence in, the
unused index on message ids alone out

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

The counter checks read each sender's latest message in the area on every post (design §15
"Replay tracking"). With only the primary key (operation, area, seq) and the per-sender unique
key (operation, area, device, message id), PostgreSQL read all of a sender's messages and
sorted them for each batch, so ingest slowed as an area grew (bench/server.py: 3.6k against
6.6k envelopes/s before per-sender checks). This index makes it one backward index step.
Every look-up by message id names its sender since receipts do (0004), so the index on
``message_id`` alone only cost each insert.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Expand-only for code at 0011: only indexes change, and no query of that code names
# message_id without its sender, so it runs on this schema (its plans merely differ).
keeps_running: str | None = "0011"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index("ix_events_sender_seq", "events", ["operation_id", "area", "device_id", "seq"])
    op.drop_index("ix_events_message_id", table_name="events")


def downgrade() -> None:
    """Downgrade schema."""
    op.create_index("ix_events_message_id", "events", ["message_id"], unique=False)
    op.drop_index("ix_events_sender_seq", table_name="events")
