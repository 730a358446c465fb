"""rollups: an agent's runs summed per hour, day and month, with a duration sketch, by triggers

Stats then merge a few buckets instead of scanning an agent's rows. Kept like the status counts
(0003): statement-level triggers with transition tables, one grouped statement per write
statement, in the same transaction as the rows, whatever writes them (projector upserts, prune
and erase deletes).

- execution_rollups: per (agent, period, bucket_start, model, status, cost_currency) the runs,
  the runs with a known duration, token sums and how many runs reported each, the cost sum
  (numeric: exact). Unknown model or no cost is '' in the key (a model has at least one
  character, a currency three), so the key has no NULLs.
- execution_duration_sketches: per (agent, period, bucket_start, model, status) how many
  durations fell in each log bucket: bucket i >= 0 holds (gamma^(i-1), gamma^i] ms with
  gamma = 1.01 / 0.99, so the bucket's representative 2 gamma^i / (gamma + 1) is within 1 % of
  every duration in it; 0 ms is bucket -1. Buckets add up: any set of them merges exactly.

period is 'hour', 'day' or 'month' (UTC): a range of a year reads ~13 month buckets, not
8,760 hour ones. Rows whose counts fall to zero stay (like the status counts).

fill_execution_rollups() fills both from agent_executions in one pass: the backfill here and
replay's (resolving agent_executions through the search path, so replay calls it with the
shadow schema first). Trigger and fill are one SQL template. execution_duration_bucket(ms) is
the bucket rule for readers (the API counts edge rows with it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ln(1.01 / 0.99) as a double: the log-bucket width for 1 % relative error.
LN_GAMMA = "0.020000666706669522"
BUCKET = f"CASE WHEN {{ms}} = 0 THEN -1 ELSE ceil(ln({{ms}}::float8) / {LN_GAMMA})::smallint END"

# What each changed row contributes, d = +1 (new) or -1 (old); then both tables in one statement.
ROW = (
    "agent_id, status, execution_start, COALESCE(model, '') AS model, "
    "COALESCE(cost_currency, '') AS cost_currency, input_tokens, output_tokens, cost, "
    "execution_time_ms AS ms"
)
# First summed per hour (an UPDATE's unchanged rows cancel out there), then each hour's sums
# added to its hour, day and month: the expansion costs hour groups, not rows. In parts, which
# migration 0010 reuses around its own duration sketch.
HOURLY = """
    , hourly AS (
        SELECT agent_id, date_trunc('hour', execution_start, 'UTC') AS hour, model, status,
            cost_currency, sum(d) AS n, COALESCE(sum(d) FILTER (WHERE ms IS NOT NULL), 0) AS timed,
            COALESCE(sum(d * input_tokens), 0) AS input_tokens,
            COALESCE(sum(d) FILTER (WHERE input_tokens IS NOT NULL), 0) AS input_tokens_n,
            COALESCE(sum(d * output_tokens), 0) AS output_tokens,
            COALESCE(sum(d) FILTER (WHERE output_tokens IS NOT NULL), 0) AS output_tokens_n,
            COALESCE(sum(d * cost), 0) AS cost
        FROM changes GROUP BY 1, 2, 3, 4, 5)
"""
_HOURLY_DURATIONS = f"""
    , hourly_durations AS (
        SELECT agent_id, date_trunc('hour', execution_start, 'UTC') AS hour, model, status,
            {BUCKET.format(ms="ms")} AS bucket, sum(d) AS n
        FROM changes WHERE ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0)
"""
SUMS = """
    , periods AS (SELECT unnest(ARRAY['hour', 'day', 'month']) AS period)
    , sums AS (
        INSERT INTO execution_rollups AS r (
            agent_id, period, bucket_start, model, status, cost_currency, n, timed,
            input_tokens, input_tokens_n, output_tokens, output_tokens_n, cost)
        SELECT agent_id, period, date_trunc(period, hour, 'UTC'), model, status, cost_currency,
            sum(n), sum(timed), sum(input_tokens), sum(input_tokens_n), sum(output_tokens),
            sum(output_tokens_n), sum(cost)
        FROM hourly CROSS JOIN periods
        WHERE n <> 0 OR timed <> 0 OR input_tokens_n <> 0 OR output_tokens_n <> 0
            OR input_tokens <> 0 OR output_tokens <> 0 OR cost <> 0
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (agent_id, period, bucket_start, model, status, cost_currency) DO UPDATE SET
            n = r.n + EXCLUDED.n, timed = r.timed + EXCLUDED.timed,
            input_tokens = r.input_tokens + EXCLUDED.input_tokens,
            input_tokens_n = r.input_tokens_n + EXCLUDED.input_tokens_n,
            output_tokens = r.output_tokens + EXCLUDED.output_tokens,
            output_tokens_n = r.output_tokens_n + EXCLUDED.output_tokens_n,
            cost = r.cost + EXCLUDED.cost)
"""
_SKETCH = """
    INSERT INTO execution_duration_sketches AS s (
        agent_id, period, bucket_start, model, status, bucket, n)
    SELECT agent_id, period, date_trunc(period, hour, 'UTC'), model, status, bucket, sum(n)
    FROM hourly_durations CROSS JOIN periods GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (agent_id, period, bucket_start, model, status, bucket) DO UPDATE SET
        n = s.n + EXCLUDED.n;
"""
ADD = HOURLY + _HOURLY_DURATIONS + SUMS + _SKETCH


def trigger_function(add: str) -> str:
    """roll_up_executions(): each write statement's changed rows through ``add``."""
    return f"""
CREATE OR REPLACE FUNCTION roll_up_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH changes AS (SELECT {ROW}, 1 AS d FROM new_rows)
        {add}
    ELSIF TG_OP = 'DELETE' THEN
        WITH changes AS (SELECT {ROW}, -1 AS d FROM old_rows)
        {add}
    ELSE
        WITH changes AS (
            SELECT {ROW}, -1 AS d FROM old_rows
            UNION ALL
            SELECT {ROW}, 1 AS d FROM new_rows)
        {add}
    END IF;
    RETURN NULL;
END
$$
"""


def fill_function(add: str) -> str:
    """fill_execution_rollups(): every row of agent_executions through ``add``."""
    return f"""
CREATE OR REPLACE FUNCTION fill_execution_rollups() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH changes AS (SELECT {ROW}, 1 AS d FROM agent_executions)
    {add}
END
$$
"""


_BUCKET_FUNCTION = f"""
CREATE FUNCTION execution_duration_bucket(ms bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {BUCKET.format(ms="ms")} $$
"""

_TRIGGERS = {
    "roll_up_inserted_executions": "AFTER INSERT ON agent_executions "
    "REFERENCING NEW TABLE AS new_rows",
    "roll_up_updated_executions": "AFTER UPDATE ON agent_executions "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "roll_up_deleted_executions": "AFTER DELETE ON agent_executions "
    "REFERENCING OLD TABLE AS old_rows",
}


def _key() -> list[sa.Column[object]]:
    return [
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
    ]


def create_duration_sketches() -> None:
    """This revision's duration sketch: one row per log bucket."""
    op.create_table(
        "execution_duration_sketches",
        *_key(),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            *(column.name for column in _key()),
            "bucket",
            name=op.f("pk_execution_duration_sketches"),
        ),
    )


def upgrade() -> None:
    # No writes between the backfill and the triggers.
    op.execute("LOCK TABLE agent_executions IN SHARE MODE")
    op.create_table(
        "execution_rollups",
        *_key(),
        sa.Column("cost_currency", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("timed", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.Numeric(), nullable=False),
        sa.Column("input_tokens_n", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.Numeric(), nullable=False),
        sa.Column("output_tokens_n", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint(
            *(column.name for column in _key()),
            "cost_currency",
            name=op.f("pk_execution_rollups"),
        ),
    )
    create_duration_sketches()
    op.execute(_BUCKET_FUNCTION)
    op.execute(trigger_function(ADD))
    op.execute(fill_function(ADD))
    op.execute("SELECT fill_execution_rollups()")
    for name, when in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION roll_up_executions()"
        )


def downgrade() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON agent_executions")
    op.execute("DROP FUNCTION fill_execution_rollups()")
    op.execute("DROP FUNCTION roll_up_executions()")
    op.execute("DROP FUNCTION execution_duration_bucket(bigint)")
    op.drop_table("execution_duration_sketches")
    op.drop_table("execution_rollups")
