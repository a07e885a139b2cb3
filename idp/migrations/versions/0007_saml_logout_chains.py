"""saml logout chains: a sign-out carried by the browser from one SAML SP to the next

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 16:56:07.700972

"""
import sqlalchemy as sa
from alembic import op

from directory.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('saml_logout_chains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('directory_session_id', sa.Integer(), nullable=False),
    sa.Column('pending_request_id', sa.String(length=64), nullable=True),
    sa.Column('pending_sp_id', sa.Integer(), nullable=True),
    sa.Column('return_url', sa.Text(), nullable=True),
    sa.Column('answer_sp_id', sa.Integer(), nullable=True),
    sa.Column('answer_request_id', sa.String(length=256), nullable=True),
    sa.Column('answer_relay_state', sa.Text(), nullable=True),
    sa.Column('missed', sa.JSON(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['answer_sp_id'], ['saml_service_providers.id'], name=op.f('fk_saml_logout_chains_answer_sp_id_saml_service_providers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['directory_session_id'], ['directory_sessions.id'], name=op.f('fk_saml_logout_chains_directory_session_id_directory_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pending_sp_id'], ['saml_service_providers.id'], name=op.f('fk_saml_logout_chains_pending_sp_id_saml_service_providers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_logout_chains')),
    sa.UniqueConstraint('pending_request_id', name=op.f('uq_saml_logout_chains_pending_request_id'))
    )


def downgrade():
    op.drop_table('saml_logout_chains')
