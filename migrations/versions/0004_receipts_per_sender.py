"""receipts keyed by the message as the server keeps it unique: (operation, area, sender, id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Since 0003 two senders may use one message id in an area, but receipts were keyed by the
message id alone, so one sender's receipts counted for the other's message (design §15,
"Receipts name the sender"). Receipts now carry the operation, area and sending device of
their message. Existing rows keep their statement; their operation and area come from the
signed statement, their sender from the stored message they were accepted for: the area's
earliest message under the id, which is the one the server's look-up took when it stored
them. A row whose message is no longer stored (nothing left to acknowledge) is dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from opseal.crypto.errors import CryptoError
from opseal.crypto.statements import Receipt

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Not expand-only: code at the revision before does not run on this schema (design §13).
keeps_running: str | None = None

_COLUMNS = ("message_id", "device_id", "kind", "org_id", "statement", "created_at")
_SENDER = sa.text(
    "SELECT device_id FROM events WHERE operation_id = :op AND area = :area "
    "AND message_id = :message_id AND kind = 'message' ORDER BY seq LIMIT 1"
)


def _new_table() -> None:
    op.create_table(
        "receipts",
        sa.Column("operation_id", sa.String(length=128), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "operation_id",
            "area",
            "sender_id",
            "message_id",
            "device_id",
            "kind",
            name=op.f("pk_receipts"),
        ),
    )


def upgrade() -> None:
    """Upgrade schema: copy each receipt with its message's operation, area and sender."""
    bind = op.get_bind()
    columns = ("operation_id", "area", "sender_id", *_COLUMNS)
    table = sa.table("receipts", *(sa.column(c) for c in columns))
    rows = []
    for row in bind.execute(sa.select(*(table.c[c] for c in _COLUMNS))).mappings():
        try:
            receipt = Receipt.from_bytes(row["statement"])
        except CryptoError:  # the server verified it when storing it: not expected
            continue
        place = {"op": receipt.operation_id, "area": receipt.area}
        sender = bind.execute(_SENDER, {**place, "message_id": row["message_id"]}).scalar()
        if sender is not None:
            rows.append({**row, "operation_id": place["op"], "area": place["area"],
                         "sender_id": sender})  # fmt: skip
    op.drop_table("receipts")  # read whole first: a primary key cannot be renamed everywhere
    _new_table()
    if rows:
        bind.execute(sa.insert(table), rows)


def downgrade() -> None:
    """Downgrade schema: of two senders' messages under one id, the receipts of the earlier
    stored receipt per (message id, device, kind) are kept."""
    bind = op.get_bind()
    table = sa.table("receipts", *(sa.column(c) for c in _COLUMNS))
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    for row in bind.execute(sa.select(table).order_by(table.c.created_at)).mappings():
        rows.setdefault((row["message_id"], row["device_id"], row["kind"]), dict(row))
    op.drop_table("receipts")
    op.create_table(
        "receipts",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "device_id", "kind", name=op.f("pk_receipts")),
    )
    if rows:
        bind.execute(sa.insert(table), list(rows.values()))
