"""dead letters redriven: which records of the dead-letter topic went back on the event topic

One row per dead letter (dead-letter topic, partition, offset) that `agent-history dlq redrive`
sent back, written in the transaction that waits for the broker's acknowledgement, so that a
second redrive skips it. Replay leaves this table alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dlq_redriven",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "redriven_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("topic", "partition", "offset", name=op.f("pk_dlq_redriven")),
    )


def downgrade() -> None:
    op.drop_table("dlq_redriven")
