"""user certificate history (issue 9: any key ever certified can be revoked)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Not expand-only: code at the revision before does not run on this schema (design §13).
keeps_running: str | None = None


def upgrade() -> None:
    """Create ``user_certificates`` and fill it with every user's current certificate."""
    op.create_table(
        "user_certificates",
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("identity_key_id", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.org_id"],
            name=op.f("fk_user_certificates_org_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("org_id", "identity_key_id", name=op.f("pk_user_certificates")),
    )
    op.execute(
        "INSERT INTO user_certificates (org_id, identity_key_id, user_id, certificate, "
        "created_at) SELECT org_id, identity_key_id, user_id, certificate, created_at FROM users"
    )


def downgrade() -> None:
    """Drop the history."""
    op.drop_table("user_certificates")
