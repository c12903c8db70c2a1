"""blob chunks may keep their bytes in an external store: data nullable, length, object_key

Revision ID: 0011
Revises: 0004
Create Date: 2026-12-01

With the ``blob_store`` setting pointing at a directory (or, later, object storage), a chunk
row names the object holding its bytes instead of holding them. ``length`` is recorded on every
new row; rows written before keep their bytes and their length is read from them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Not expand-only: code at the revision before does not run on this schema (design §13).
keeps_running: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("blob_chunks", schema=None) as batch_op:
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.add_column(sa.Column("length", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("object_key", sa.String(length=96), nullable=True))


def downgrade() -> None:
    """Downgrade schema: fails while a chunk's bytes live outside the database."""
    with op.batch_alter_table("blob_chunks", schema=None) as batch_op:
        batch_op.drop_column("object_key")
        batch_op.drop_column("length")
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
