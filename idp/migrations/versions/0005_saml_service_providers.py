"""saml service providers

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 15:51:32.888240

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('saml_service_providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('entity_id', sa.String(length=1024), nullable=False),
    sa.Column('metadata_xml', sa.Text(), nullable=False),
    sa.Column('nameid_format', sa.String(length=64), nullable=False),
    sa.Column('released_attributes', sa.JSON(), nullable=False),
    sa.Column('wants_signed_requests', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['apps.id'], name=op.f('fk_saml_service_providers_app_id_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_service_providers')),
    sa.UniqueConstraint('app_id', name=op.f('uq_saml_service_providers_app_id')),
    sa.UniqueConstraint('entity_id', name=op.f('uq_saml_service_providers_entity_id'))
    )


def downgrade():
    op.drop_table('saml_service_providers')
