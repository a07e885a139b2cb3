"""oauth client scope: the /api/v1 scopes a client_credentials client may ask for

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 18:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=500), nullable=False, server_default=""))
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.alter_column("scope", existing_type=sa.String(length=500), server_default=None)


def downgrade():
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("scope")
