"""heartbeats, deadlines and the timed_out status

Two columns that a watchdog judges open runs by: ``last_seen_at`` (the newest time of a run's
events but verdicts) and ``timeout_ms`` (the run time the run asked for); the status
``timed_out``; partial indexes over the open runs for the watchdog's queries.

Rows projected before this revision have no event times but the ones the fold kept: the open
ones (the only ones a watchdog looks at) get the newest of those, a lower bound of the true
value; the others keep NULL until a replay computes every row exactly. The status counts
(migration 0003) are kept by triggers that read the status of each row, so they count
``timed_out`` like any other status without a change.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "('pending', 'running', 'completed', 'failed', 'cancelled')"
_WITH_TIMED_OUT = "('pending', 'running', 'completed', 'failed', 'cancelled', 'timed_out')"
_INDEXES = {
    "ix_agent_executions_running_last_seen_at": ("last_seen_at", "status = 'running'"),
    "ix_agent_executions_running_with_timeout": (
        "execution_start",
        "status = 'running' AND timeout_ms IS NOT NULL",
    ),
    "ix_agent_executions_pending_since": ("execution_start", "status = 'pending'"),
}


def _status_check(statuses: str) -> None:
    op.drop_constraint(op.f("ck_agent_executions_status"), "agent_executions", type_="check")
    op.create_check_constraint(
        op.f("ck_agent_executions_status"), "agent_executions", f"status IN {statuses}"
    )


def upgrade() -> None:
    op.add_column("agent_executions", sa.Column("timeout_ms", sa.BigInteger(), nullable=True))
    op.add_column(
        "agent_executions",
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "UPDATE agent_executions SET last_seen_at = GREATEST(execution_start, input_time) "
        "WHERE status IN ('pending', 'running')"
    )
    _status_check(_WITH_TIMED_OUT)
    for name, (column, where) in _INDEXES.items():
        op.create_index(
            name, "agent_executions", [column], unique=False, postgresql_where=sa.text(where)
        )


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="agent_executions")
    # What the previous fold makes of the same events, which cannot read heartbeats and
    # verdicts: no row for an execution seen only through them, and a timed-out run open.
    op.execute(
        "DELETE FROM agent_executions WHERE input_rank IS NULL "
        "AND (terminal_event_id IS NULL OR status = 'timed_out')"
    )
    op.execute(
        "UPDATE agent_executions SET status = CASE WHEN input_rank = 0 THEN 'running' "
        "ELSE 'pending' END, execution_end = NULL, output_data = NULL, error_message = NULL, "
        "terminal_event_id = NULL WHERE status = 'timed_out'"
    )
    _status_check(_STATUSES)
    op.drop_column("agent_executions", "last_seen_at")
    op.drop_column("agent_executions", "timeout_ms")
