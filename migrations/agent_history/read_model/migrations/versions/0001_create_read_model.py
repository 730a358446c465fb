"""create read model

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("name_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_table(
        "projector_checkpoints",
        sa.Column("consumer_group", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("dead_lettered", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "consumer_group", "topic", "partition", name=op.f("pk_projector_checkpoints")
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("name_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "agent_executions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("execution_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("execution_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "execution_time_ms",
            sa.BigInteger(),
            sa.Computed(
                "CASE WHEN input_rank = 0 AND execution_end IS NOT NULL THEN GREATEST(0, TRUNC(EXTRACT(EPOCH FROM (execution_end - execution_start)) * 1000))::bigint END",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "input_data", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True
        ),
        sa.Column(
            "output_data", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("input_rank", sa.SmallInteger(), nullable=True),
        sa.Column("input_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("input_event_id", sa.UUID(), nullable=True),
        sa.Column("terminal_event_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_agent_executions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_executions_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_executions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_executions")),
    )
    op.create_index(
        "ix_agent_executions_agent_history",
        "agent_executions",
        ["agent_id", sa.literal_column("execution_start DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index("ix_agent_executions_agent_id", "agent_executions", ["agent_id"], unique=False)
    op.create_index(
        "ix_agent_executions_execution_start", "agent_executions", ["execution_start"], unique=False
    )
    op.create_index("ix_agent_executions_status", "agent_executions", ["status"], unique=False)
    op.create_index("ix_agent_executions_user_id", "agent_executions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agent_executions_user_id", table_name="agent_executions")
    op.drop_index("ix_agent_executions_status", table_name="agent_executions")
    op.drop_index("ix_agent_executions_execution_start", table_name="agent_executions")
    op.drop_index("ix_agent_executions_agent_id", table_name="agent_executions")
    op.drop_index("ix_agent_executions_agent_history", table_name="agent_executions")
    op.drop_table("agent_executions")
    op.drop_table("users")
    op.drop_table("projector_checkpoints")
    op.drop_table("agents")
