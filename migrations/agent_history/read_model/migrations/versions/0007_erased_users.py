"""erased users: who was erased, and what was removed and dropped since

One row per erased user, written by `agent-history erase` (and the API's erase endpoint) before
it deletes the user's rows. The projector and replay read it to drop a late event of an erased
user; the live projector counts those in ``dropped_events``. Replay leaves this table alone
(it is not part of the rebuilt read model), so an erasure outlives every replay.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_users",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "executions_removed", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("dropped_events", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_erased_users")),
    )


def downgrade() -> None:
    op.drop_table("erased_users")
