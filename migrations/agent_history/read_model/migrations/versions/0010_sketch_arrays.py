"""duration sketches as arrays: one row per (agent, period, bucket_start[, model])

Migration 0006 kept a row per log bucket and per status, so a stats request read and grouped
thousands of sketch rows (25,869 for a 30-day daily series of the benchmark's big agent). Now
a row holds its histogram as a dense array: ``counts[i]`` runs in log bucket ``lo + i - 1``
(the buckets are 0006's: ``execution_duration_bucket``), trimmed so that its first and last
counts are not zero; a row whose runs are all gone holds ``'{}'``. Two tables:
execution_duration_sketches per model (for group_by=model) and
execution_duration_sketches_all_models (for everything else: a third of the values to read
and merge when an agent's runs use three models). The API merges and ranks the arrays itself
(docs/benchmarks-stats.md).

``status`` left the key: a stats request over every status merges one histogram per bucket
instead of one per status as well; ``group_by=status`` reads the runs' rows instead (exact
percentiles).

The trigger locks a statement's existing sketch rows in key order and adds each key's few new
buckets in place with ``add_duration_buckets`` (plpgsql); keys without a row are inserted.
Building a dense array of the new buckets and merging it element by element cost 3x more; the
same merge in plain SQL re-read the stored array at every reference and was 4x slower still.
The trigger runs with replay's search path (the shadow schema only), so it names that function
with the schema this migration runs in. The existing sketches are converted from 0006's rows;
the downgrade refills 0006's from the runs' rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11
"""

from collections.abc import Sequence
from types import ModuleType

import sqlalchemy as sa
from alembic import op

from agent_history.read_model.migrate import revision_module

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rollups() -> ModuleType:
    """Migration 0006: the rollups' trigger template, which this one reuses."""
    return revision_module("0006_rollups.py")


_ADD_FUNCTION = """
CREATE FUNCTION add_duration_buckets(a_lo smallint, a bigint[], buckets smallint[], ns bigint[],
    OUT lo smallint, OUT counts bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    b_lo int := (SELECT min(b) FROM unnest(buckets) AS b);
    b_hi int := (SELECT max(b) FROM unnest(buckets) AS b);
    first bigint;
    last bigint;
BEGIN
    -- The stored array widened to the new buckets, then each (few) bucket added in place.
    lo := a_lo;
    counts := a;
    IF cardinality(counts) = 0 THEN
        lo := b_lo;
        counts := array_fill(0::bigint, ARRAY[b_hi - b_lo + 1]);
    ELSE
        IF b_lo < lo THEN
            counts := array_fill(0::bigint, ARRAY[lo - b_lo]) || counts;
            lo := b_lo;
        END IF;
        IF b_hi >= lo + cardinality(counts) THEN
            counts := counts || array_fill(0::bigint, ARRAY[b_hi - lo - cardinality(counts) + 1]);
        END IF;
    END IF;
    FOR i IN 1 .. cardinality(buckets) LOOP
        counts[buckets[i] - lo + 1] := counts[buckets[i] - lo + 1] + ns[i];
    END LOOP;
    -- Removals (prune, erase, a run that changed) can leave zeros at the ends: trimmed, so a
    -- row whose runs are all gone holds nothing.
    IF counts[1] = 0 OR counts[cardinality(counts)] = 0 THEN
        SELECT min(o), max(o) INTO first, last
        FROM unnest(counts) WITH ORDINALITY AS v(x, o) WHERE x <> 0;
        lo := lo + COALESCE(first, 1) - 1;
        counts := COALESCE(counts[first:last], '{}');
    END IF;
END
$$
"""

# Sparse (…, bucket, n) rows, grouped by the sketch key, as (lo, dense counts): the conversion
# of 0006's rows.
_DENSE = """min(bucket), ARRAY(
        SELECT COALESCE(d.n, 0) FROM generate_series(min(bucket)::int, max(bucket)) AS i
        LEFT JOIN unnest(array_agg(bucket), array_agg(n)) AS d(bucket, n) ON d.bucket = i
        ORDER BY i)"""


def _sketch(table: str, key: tuple[str, ...], source: str, schema: str) -> tuple[str, str]:
    """CTEs that add ``source``'s (key…, bucket, n) rows to ``table``'s existing rows, and
    the INSERT of its new ones.

    The existing rows are locked in key order first (as the other rollups' ORDER BY does, so
    concurrent projectors never deadlock), then updated with each key's few new buckets. Keys
    without a row are inserted; one that a concurrent transaction inserted meanwhile
    conflicts and is merged the same way.
    """
    cols = ("agent_id", "period", "bucket_start", *key)
    names = ", ".join(cols)

    def same(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{c} = {b}.{c}" for c in cols)

    add = f"{schema}.add_duration_buckets"
    ctes = f"""
    , {table}_d AS (
        SELECT {names}, array_agg(bucket)::smallint[] AS buckets, array_agg(n)::bigint[] AS ns
        FROM {source}
        GROUP BY {names})
    , {table}_l AS (
        SELECT {", ".join(f"s.{c}" for c in cols)} FROM {table} s JOIN {table}_d d ON {same("s", "d")}
        ORDER BY {", ".join(f"s.{c}" for c in cols)} FOR UPDATE OF s)
    , {table}_u AS (
        UPDATE {table} AS s SET (lo, counts) = (
            SELECT m.lo, m.counts FROM {add}(s.lo, s.counts, d.buckets, d.ns) AS m)
        FROM {table}_l l JOIN {table}_d d ON {same("l", "d")} WHERE {same("s", "l")})
"""
    insert = f"""
        INSERT INTO {table} AS s ({names}, lo, counts)
        SELECT {", ".join(f"d.{c}" for c in cols)}, m.lo, m.counts
        FROM {table}_d d CROSS JOIN LATERAL {add}(0::smallint, '{{}}', d.buckets, d.ns) AS m
        WHERE NOT EXISTS (SELECT FROM {table}_l l WHERE {same("l", "d")})
        ORDER BY {", ".join(f"d.{c}" for c in cols)}
        ON CONFLICT ({names}) DO UPDATE SET (lo, counts) = (
            SELECT m.lo, m.counts FROM {add}(s.lo, s.counts,
                ARRAY(SELECT EXCLUDED.lo + o - 1 FROM unnest(EXCLUDED.counts)
                      WITH ORDINALITY AS u(n, o) WHERE n <> 0)::smallint[],
                ARRAY(SELECT n FROM unnest(EXCLUDED.counts) AS u(n) WHERE n <> 0)) AS m)
"""
    return ctes, insert


def _add(schema: str) -> str:
    """0006's template with this revision's sketches: per hour, bucket sums; then per period,
    per model and over all models."""
    rollups = _rollups()
    hourly = f"""
    , hourly_durations AS (
        SELECT agent_id, date_trunc('hour', execution_start, 'UTC') AS hour, model,
            {rollups.BUCKET.format(ms="ms")} AS bucket, sum(d) AS n
        FROM changes WHERE ms IS NOT NULL GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0)
"""
    durations = """
    , durations AS (
        SELECT agent_id, period, date_trunc(period, hour, 'UTC') AS bucket_start, model, bucket,
            sum(n) AS n
        FROM hourly_durations CROSS JOIN periods GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0)
    , all_models AS (
        SELECT agent_id, period, bucket_start, bucket, sum(n) AS n FROM durations
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0)
"""
    by_model, insert_by_model = _sketch(
        "execution_duration_sketches", ("model",), "durations", schema
    )
    over_all, insert_over_all = _sketch(
        "execution_duration_sketches_all_models", (), "all_models", schema
    )
    return (
        f"{rollups.HOURLY}{hourly}{rollups.SUMS}{durations}{by_model}"
        f"    , execution_duration_sketches_i AS ({insert_by_model})\n"
        f"{over_all}{insert_over_all};\n"
    )


def _create_sketches(name: str, *key: str) -> None:
    op.create_table(
        name,
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(column, sa.Text(), nullable=False) for column in key],
        sa.Column("lo", sa.SmallInteger(), nullable=False),
        sa.Column("counts", sa.ARRAY(sa.BigInteger()), nullable=False),
        sa.PrimaryKeyConstraint(
            "agent_id", "period", "bucket_start", *key, name=op.f(f"pk_{name}")
        ),
        # Rows up to ~8 kB stay whole and uncompressed: the trigger rewrites a row on every
        # write, and compressing each (arrays of 250+ buckets) made that 15x slower.
        postgresql_with={"toast_tuple_target": 8160},
    )
    columns = ", ".join(("agent_id", "period", "bucket_start", *key))
    op.execute(f"""
    INSERT INTO {name} ({columns}, lo, counts)
    SELECT {columns}, {_DENSE}
    FROM (SELECT {columns}, bucket, sum(n) AS n FROM execution_duration_sketches_0006
          GROUP BY {columns}, bucket HAVING sum(n) <> 0) d
    GROUP BY {columns} ORDER BY {columns}
    """)


def upgrade() -> None:
    # No writes between the conversion and the new trigger.
    op.execute("LOCK TABLE agent_executions IN SHARE MODE")
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    op.execute(_ADD_FUNCTION)
    op.rename_table("execution_duration_sketches", "execution_duration_sketches_0006")
    op.execute(
        "ALTER TABLE execution_duration_sketches_0006 "
        "RENAME CONSTRAINT pk_execution_duration_sketches TO pk_execution_duration_sketches_0006"
    )
    _create_sketches("execution_duration_sketches", "model")
    _create_sketches("execution_duration_sketches_all_models")
    rollups = _rollups()
    op.execute(rollups.trigger_function(_add(schema)))
    op.execute(rollups.fill_function(_add(schema)))
    op.drop_table("execution_duration_sketches_0006")


def downgrade() -> None:
    op.execute("LOCK TABLE agent_executions IN SHARE MODE")
    rollups = _rollups()
    op.drop_table("execution_duration_sketches_all_models")
    op.drop_table("execution_duration_sketches")
    rollups.create_duration_sketches()
    op.execute(rollups.trigger_function(rollups.ADD))
    op.execute(rollups.fill_function(rollups.ADD))
    # 0006's sketch keeps statuses that the arrays do not: both tables refilled from the rows.
    op.execute("TRUNCATE execution_rollups")
    op.execute("SELECT fill_execution_rollups()")
    op.execute("DROP FUNCTION add_duration_buckets(smallint, bigint[], smallint[], bigint[])")
