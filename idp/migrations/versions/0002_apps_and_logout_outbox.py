"""apps, application sessions, logout outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:09:25.142954

"""
import sqlalchemy as sa
from alembic import op

from directory.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('apps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('protocol', sa.String(length=8), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('trusted', sa.Boolean(), nullable=False),
    sa.Column('single_logout', sa.Boolean(), nullable=False),
    sa.Column('backchannel_logout', sa.Boolean(), nullable=False),
    sa.Column('frontchannel_logout', sa.Boolean(), nullable=False),
    sa.Column('session_idle_seconds', sa.Integer(), nullable=False),
    sa.Column('session_max_seconds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_apps'))
    )
    op.create_table('app_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('directory_session_id', sa.Integer(), nullable=True),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('last_used_at', UTCDateTime(), nullable=False),
    sa.Column('idle_seconds', sa.Integer(), nullable=False),
    sa.Column('max_seconds', sa.Integer(), nullable=False),
    sa.Column('ended_at', UTCDateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['apps.id'], name=op.f('fk_app_sessions_app_id_apps'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['directory_session_id'], ['directory_sessions.id'], name=op.f('fk_app_sessions_directory_session_id_directory_sessions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_app_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_sessions')),
    sa.UniqueConstraint('sid', name=op.f('uq_app_sessions_sid'))
    )
    with op.batch_alter_table('app_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_app_sessions_directory_session', ['directory_session_id', 'ended_at'], unique=False)

    op.create_table('logout_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_session_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
    sa.Column('lease_until', UTCDateTime(), nullable=True),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['app_session_id'], ['app_sessions.id'], name=op.f('fk_logout_deliveries_app_session_id_app_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_logout_deliveries'))
    )
    with op.batch_alter_table('logout_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_logout_deliveries_due', ['status', 'next_attempt_at'], unique=False)

    # Existing sessions were authenticated when they were opened, and predate the setting.
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('authenticated_at', UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('expiry_signs_out_apps', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE directory_sessions SET authenticated_at = created_at")
    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.alter_column('authenticated_at', existing_type=UTCDateTime(), nullable=False)
        batch_op.alter_column('expiry_signs_out_apps', existing_type=sa.Boolean(), server_default=None)

    with op.batch_alter_table('directory_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signout_apps_on_expiry', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('directory_settings', schema=None) as batch_op:
        batch_op.alter_column('signout_apps_on_expiry', existing_type=sa.Boolean(), server_default=None)



def downgrade():
    with op.batch_alter_table('directory_settings', schema=None) as batch_op:
        batch_op.drop_column('signout_apps_on_expiry')

    with op.batch_alter_table('directory_sessions', schema=None) as batch_op:
        batch_op.drop_column('expiry_signs_out_apps')
        batch_op.drop_column('authenticated_at')

    with op.batch_alter_table('logout_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_logout_deliveries_due')

    op.drop_table('logout_deliveries')
    with op.batch_alter_table('app_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_app_sessions_directory_session')

    op.drop_table('app_sessions')
    op.drop_table('apps')
