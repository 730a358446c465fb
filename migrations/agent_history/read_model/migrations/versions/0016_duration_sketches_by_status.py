"""duration sketches per status: stats grouped by status from the rollups again

0010 kept the duration sketches per model and over all models, so stats grouped by status read
an agent's rows for their percentiles: 2.5-3.3 s on an agent of 1M runs (docs/benchmarks-
stats.md), where 0006's per-status sketch took about as long as a request grouped by model.
execution_duration_sketches_by_status keeps them per (agent, period, bucket_start, status),
in 0010's layout, written by the same trigger statement and filled by the same template
(fill_execution_rollups, which replay calls): each write's durations are grouped per model and
status first, then summed per model, per status and over both. Every status but 'completed',
which most runs end with: its sketch is the all-models one less the others' (api/stats.py), so
a write of completed runs alone adds no row here, and a backlog's writes add ~40 % fewer
rows here than with it.

The price is one more sketch row per agent, period and ended status but completed that a
write touches: a backlog's writes cost PostgreSQL ~13 % more CPU (docs/benchmarks.md, eleventh
round). The fill holds a SHARE lock on agent_executions (the projector's writes wait): 11 s
on the API benchmark's 5M runs (docs/benchmarks-stats.md).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_history.read_model.migrate import revision_module

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "execution_duration_sketches_by_status"
# The status it keeps no row for (the API works its sketch out).
_BY_DIFFERENCE = "completed"


def _add(schema: str) -> str:
    """0010's template with a third sketch: per hour, the durations per model and status; then
    per period, per model, per status and over both."""
    sketches = revision_module("0010_sketch_arrays.py")
    rollups = sketches._rollups()
    hourly = f"""
    , hourly_durations AS (
        SELECT agent_id, date_trunc('hour', execution_start, 'UTC') AS hour, model, status,
            {rollups.BUCKET.format(ms="ms")} AS bucket, sum(d) AS n
        FROM changes WHERE ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5 HAVING sum(d) <> 0)
"""
    # Each hour's buckets added to its periods, per model, per status and over both in one
    # pass (one hashed aggregate, a hash table per grouping set); a run whose status changed
    # but not its duration cancels out per model and over both.
    durations = f"""
    , durations_by AS (
        SELECT agent_id, period, date_trunc(period, hour, 'UTC') AS bucket_start, model, status,
            bucket, sum(n) AS n, GROUPING(model, status) AS summed
        FROM hourly_durations CROSS JOIN periods
        GROUP BY agent_id, period, bucket_start, bucket, GROUPING SETS ((model), (status), ())
        HAVING sum(n) <> 0)
    , durations AS (SELECT * FROM durations_by WHERE summed = 1)
    , durations_by_status AS (
        SELECT * FROM durations_by WHERE summed = 2 AND status <> '{_BY_DIFFERENCE}')
    , all_models AS (SELECT * FROM durations_by WHERE summed = 3)
"""
    by_model, insert_by_model = sketches._sketch(
        "execution_duration_sketches", ("model",), "durations", schema
    )
    by_status, insert_by_status = sketches._sketch(
        _TABLE, ("status",), "durations_by_status", schema
    )
    over_all, insert_over_all = sketches._sketch(
        "execution_duration_sketches_all_models", (), "all_models", schema
    )
    return (
        f"{rollups.HOURLY}{hourly}{rollups.SUMS}{durations}{by_model}"
        f"    , execution_duration_sketches_i AS ({insert_by_model})\n"
        f"{by_status}    , {_TABLE}_i AS ({insert_by_status})\n"
        f"{over_all}{insert_over_all};\n"
    )


def _functions(add: str) -> None:
    """The trigger (0014's, one pass per upsert) and the fill, both over ``add``."""
    rollups = revision_module("0006_rollups.py")
    one_pass = revision_module("0014_rollups_one_pass_per_upsert.py")
    op.execute(one_pass._trigger_function(add, rollups.ROW))
    op.execute(rollups.fill_function(add))


def upgrade() -> None:
    # No writes between the fill and the new trigger.
    op.execute("LOCK TABLE agent_executions IN SHARE MODE")
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    op.create_table(
        _TABLE,
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("lo", sa.SmallInteger(), nullable=False),
        sa.Column("counts", sa.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint(
            "agent_id", "period", "bucket_start", "status", name=op.f(f"pk_{_TABLE}")
        ),
        # As 0010 and 0013 left the other two sketch tables.
        postgresql_with={"toast_tuple_target": 8160, "fillfactor": 70},
    )
    op.execute(f"""
    INSERT INTO {_TABLE} (agent_id, period, bucket_start, status, lo, counts)
    SELECT agent_id, period, bucket_start, status, {sketches._DENSE}
    FROM (SELECT agent_id, p.period, date_trunc(p.period, execution_start, 'UTC') AS bucket_start,
              status, execution_duration_bucket(execution_time_ms) AS bucket, count(*) AS n
          FROM agent_executions CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS p(period)
          WHERE execution_time_ms IS NOT NULL AND status <> '{_BY_DIFFERENCE}'
          GROUP BY 1, 2, 3, 4, 5) d
    GROUP BY agent_id, period, bucket_start, status ORDER BY 1, 2, 3, 4
    """)
    _functions(_add(schema))


def downgrade() -> None:
    op.execute("LOCK TABLE agent_executions IN SHARE MODE")
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    _functions(revision_module("0010_sketch_arrays.py")._add(schema))
    op.drop_table(_TABLE)
