"""what a run carries: model, tags, metadata, parent run, tokens and cost

Columns filled by the fold from the input winner (model, tags, metadata, parent_execution_id)
and the terminal winner (input_tokens, output_tokens, cost, cost_currency), and the indexes
that serve the list filters on them: GIN over tags (``tags @> ARRAY[...]``) and metadata
(``metadata @> '{...}'``, jsonb_path_ops: containment only, smaller and faster than the
default operator class), and the children of a run in history order (the tree).

Rows projected before this revision have none of these values (their events had none): NULL
is exactly what the fold gives them, so nothing is backfilled.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = [
    sa.Column("model", sa.Text(), nullable=True),
    sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=True),
    sa.Column("metadata", postgresql.JSONB(), nullable=True),
    sa.Column("parent_execution_id", sa.UUID(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=True),
    sa.Column("output_tokens", sa.BigInteger(), nullable=True),
    sa.Column("cost", sa.Numeric(), nullable=True),
    sa.Column("cost_currency", sa.Text(), nullable=True),
]


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("agent_executions", column)
    op.create_index(
        "ix_agent_executions_tags", "agent_executions", ["tags"], postgresql_using="gin"
    )
    op.create_index(
        "ix_agent_executions_metadata",
        "agent_executions",
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_agent_executions_children",
        "agent_executions",
        ["parent_execution_id", sa.text("execution_start DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("parent_execution_id IS NOT NULL"),
    )


def downgrade() -> None:
    for name in ("children", "metadata", "tags"):
        op.drop_index(f"ix_agent_executions_{name}", table_name="agent_executions")
    for column in reversed(_COLUMNS):
        op.drop_column("agent_executions", column.name)
