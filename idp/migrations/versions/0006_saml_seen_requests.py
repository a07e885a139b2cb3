"""saml seen requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 16:25:00.000000

"""
import sqlalchemy as sa
from alembic import op

from directory.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('saml_seen_requests',
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('seen_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_seen_requests'))
    )
    with op.batch_alter_table('saml_seen_requests', schema=None) as batch_op:
        batch_op.create_index('ix_saml_seen_requests_seen_at', ['seen_at'], unique=False)


def downgrade():
    with op.batch_alter_table('saml_seen_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_saml_seen_requests_seen_at')

    op.drop_table('saml_seen_requests')
