"""login codes redeemed: each one-time login code once, across every API process

The page's login links carry a short-lived code (api/login.py). The API records a code's id here
when it trades the code for a token, in a short read-write transaction of its own (its sessions
are read only otherwise), and refuses a code whose id is here already, whichever process gets
it. Rows go once their code has expired (each redemption deletes the expired ones). Replay
leaves this table alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "redeemed_login_codes",
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_redeemed_login_codes")),
    )


def downgrade() -> None:
    op.drop_table("redeemed_login_codes")
