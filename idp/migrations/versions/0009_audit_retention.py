"""audit retention: how long audit events are kept before the sweep deletes them

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 18:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_SECONDS = 365 * 86400  # SessionSettings.audit_retention's default


def upgrade():
    # A stored settings row predates the setting: it gets the default, then the column has none
    # of its own, like every other setting (the application always writes it).
    with op.batch_alter_table("directory_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audit_retention_seconds", sa.Integer(), nullable=False, server_default=str(DEFAULT_SECONDS))
        )
    with op.batch_alter_table("directory_settings", schema=None) as batch_op:
        batch_op.alter_column("audit_retention_seconds", existing_type=sa.Integer(), server_default=None)


def downgrade():
    with op.batch_alter_table("directory_settings", schema=None) as batch_op:
        batch_op.drop_column("audit_retention_seconds")
