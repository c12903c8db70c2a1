"""message ids unique per sender: (operation, area, device, message id)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A message id was unique on the whole instance, so any device could occupy the id another
member's record would use (issue 12). It is now unique per operation, area and sending
device; a plain index on ``message_id`` keeps the look-up by id (receipts) fast.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Not expand-only: code at the revision before does not run on this schema (design §13).
keeps_running: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_events_message_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_events_sender_message_id", ["operation_id", "area", "device_id", "message_id"]
        )
        batch_op.create_index("ix_events_message_id", ["message_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema: fails if two senders already share a message id."""
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_message_id")
        batch_op.drop_constraint("uq_events_sender_message_id", type_="unique")
        batch_op.create_unique_constraint("uq_events_message_id", ["message_id"])
