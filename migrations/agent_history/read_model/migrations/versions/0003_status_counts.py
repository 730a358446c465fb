"""status counts per agent and per user, kept by triggers

Totals for the history lists (per agent or per user, any statuses) become a lookup instead of
a count over up to millions of rows. Statement-level triggers with transition tables keep the
counts in the same transaction as the rows, whatever writes them (the projector's upserts,
prune's deletes), with one grouped statement per write statement.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = """
    , by_agent AS (
        INSERT INTO execution_counts_by_agent AS c (agent_id, status, n)
        SELECT agent_id, status, sum(d) FROM changes GROUP BY 1, 2 HAVING sum(d) <> 0
        ORDER BY 1, 2
        ON CONFLICT (agent_id, status) DO UPDATE SET n = c.n + EXCLUDED.n)
    INSERT INTO execution_counts_by_user AS c (user_id, status, n)
    SELECT user_id, status, sum(d) FROM changes GROUP BY 1, 2 HAVING sum(d) <> 0
    ORDER BY 1, 2
    ON CONFLICT (user_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
"""

_FUNCTION = f"""
CREATE FUNCTION count_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH changes AS (SELECT agent_id, user_id, status, 1 AS d FROM new_rows)
        {_ADD}
    ELSIF TG_OP = 'DELETE' THEN
        WITH changes AS (SELECT agent_id, user_id, status, -1 AS d FROM old_rows)
        {_ADD}
    ELSE
        WITH changes AS (
            SELECT agent_id, user_id, status, -1 AS d FROM old_rows
            UNION ALL
            SELECT agent_id, user_id, status, 1 AS d FROM new_rows)
        {_ADD}
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = {
    "count_inserted_executions": "AFTER INSERT ON agent_executions REFERENCING NEW TABLE AS new_rows",
    "count_updated_executions": "AFTER UPDATE ON agent_executions "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "count_deleted_executions": "AFTER DELETE ON agent_executions REFERENCING OLD TABLE AS old_rows",
}


def _counts_table(name: str, key: str) -> None:
    op.create_table(
        name,
        sa.Column(key, sa.UUID(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(key, "status", name=op.f(f"pk_{name}")),
    )
    op.execute(
        f"INSERT INTO {name} ({key}, status, n) "
        f"SELECT {key}, status, count(*) FROM agent_executions GROUP BY 1, 2"
    )


def upgrade() -> None:
    op.execute(
        "LOCK TABLE agent_executions IN SHARE MODE"
    )  # no writes between backfill and trigger
    _counts_table("execution_counts_by_agent", "agent_id")
    _counts_table("execution_counts_by_user", "user_id")
    op.execute(_FUNCTION)
    for name, when in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION count_executions()"
        )


def downgrade() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON agent_executions")
    op.execute("DROP FUNCTION count_executions()")
    op.drop_table("execution_counts_by_user")
    op.drop_table("execution_counts_by_agent")
