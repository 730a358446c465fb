"""drop the single-column agent_id index: the agent history index serves every lookup by agent

ix_agent_executions_agent_history (agent_id, execution_start DESC, id DESC) leads with agent_id,
so it serves everything the single-column index did (the lookups by agent, and the check on
agent_executions when an agent row is deleted), as 0002 found for user_id. Each write of a run
still updated both: every insert, and every update that changes the status (never heap-only,
as the status is indexed), added an entry to each. Dropped, a backlog's writes cost PostgreSQL ~2 % less CPU
(docs/benchmarks.md, tenth round) and the index's space is freed.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tables built from tables.py by a newer replay (its swap) never had it.
    op.drop_index("ix_agent_executions_agent_id", table_name="agent_executions", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_agent_executions_agent_id", "agent_executions", ["agent_id"], unique=False)
