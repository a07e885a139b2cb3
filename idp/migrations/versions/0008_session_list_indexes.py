"""session list indexes: newest activity first, by end reason, by user, by app

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 17:50:00.000000

"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_directory_sessions_activity", "directory_sessions", ["last_activity_at", "id"])
    op.create_index("ix_directory_sessions_reason", "directory_sessions", ["end_reason", "last_activity_at"])
    op.create_index("ix_directory_sessions_user_activity", "directory_sessions", ["user_id", "last_activity_at", "id"])
    op.create_index("ix_app_sessions_app", "app_sessions", ["app_id", "directory_session_id"])


def downgrade():
    op.drop_index("ix_app_sessions_app", table_name="app_sessions")
    op.drop_index("ix_directory_sessions_user_activity", table_name="directory_sessions")
    op.drop_index("ix_directory_sessions_reason", table_name="directory_sessions")
    op.drop_index("ix_directory_sessions_activity", table_name="directory_sessions")
