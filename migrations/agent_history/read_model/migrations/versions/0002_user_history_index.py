"""user history index

An index shaped like the agent history one serves GET /users/{id}/executions and the lists
of callers who may only see their own runs; it makes the single-column user_id index
redundant, so that one goes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_agent_executions_user_history",
        "agent_executions",
        ["user_id", sa.literal_column("execution_start DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.drop_index("ix_agent_executions_user_id", table_name="agent_executions")


def downgrade() -> None:
    op.create_index("ix_agent_executions_user_id", "agent_executions", ["user_id"], unique=False)
    op.drop_index("ix_agent_executions_user_history", table_name="agent_executions")
