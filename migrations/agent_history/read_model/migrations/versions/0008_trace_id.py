"""the run's trace id

``trace_id``: the trace id of the W3C traceparent that the run's input winner (its Started
event, else its Queued one) carried, so that a person can go from a run to its trace. Filled
by the fold; rows projected before this revision had no traceparent in their events (NULL is
what the fold gives them), so nothing is backfilled. Looked up only by row, so no index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agent_executions", sa.Column("trace_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("agent_executions", "trace_id")
