"""rollups planned per write: the trigger's statement is planned with each write's row counts

roll_up_executions() ran its statement (0010's, over the transition tables) as static SQL in
plpgsql, which plans it once per connection and keeps that plan. The planner sizes the
transition tables as they are at that first call, and the first call is often empty: a
connection's first upsert fires the UPDATE trigger too, with no updated rows. Planned for one
row, the joins between the statement's CTEs became nested loops, so a later batch of 600 sketch
keys compared 360,000 pairs per join (docs/benchmarks.md). EXECUTE plans the same statement at
every call, with the counts of that write; planning costs far less than those loops.

add_duration_buckets, which the statement calls for every sketch row it writes, finds the new
buckets' range and trims the zeros with plain plpgsql loops instead of subqueries over unnest
(each a query of its own): the same results in half the time. The fill (called once per pass)
and the tables stay 0010's.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_history.read_model.migrate import revision_module

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# 0010's add_duration_buckets, the same results with half its time (docs/benchmarks.md).
_ADD_FUNCTION = """
CREATE OR REPLACE FUNCTION add_duration_buckets(
    a_lo smallint, a bigint[], buckets smallint[], ns bigint[], OUT lo smallint, OUT counts bigint[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    b_lo int := buckets[1];
    b_hi int := buckets[1];
    b int;
    first int;
    last int;
BEGIN
    -- Plain loops: a subquery (0010's min and max over unnest) is a query run through SPI.
    FOREACH b IN ARRAY buckets LOOP
        IF b < b_lo THEN
            b_lo := b;
        ELSIF b > b_hi THEN
            b_hi := b;
        END IF;
    END LOOP;
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
    -- Zeros at the ends trimmed, as in 0010: a row whose runs are all gone holds nothing.
    IF counts[1] = 0 OR counts[cardinality(counts)] = 0 THEN
        FOR i IN 1 .. cardinality(counts) LOOP
            IF counts[i] <> 0 THEN
                first := i;
                EXIT;
            END IF;
        END LOOP;
        IF first IS NULL THEN
            counts := '{}';
        ELSE
            FOR i IN REVERSE cardinality(counts) .. first LOOP
                IF counts[i] <> 0 THEN
                    last := i;
                    EXIT;
                END IF;
            END LOOP;
            lo := lo + first - 1;
            counts := counts[first:last];
        END IF;
    END IF;
END
$$
"""


def _trigger_function(add: str, row: str) -> str:
    """0006's roll_up_executions() with each branch's statement run through EXECUTE."""

    def run(changes: str) -> str:
        # Dollar-quoted: 0010's statement has quotes of its own. Its trailing ";" ends the
        # EXECUTE's string, which takes exactly one statement.
        return f"EXECUTE $statement$ WITH changes AS ({changes}) {add.rstrip().rstrip(';')} $statement$;"

    old, new = f"SELECT {row}, -1 AS d FROM old_rows", f"SELECT {row}, 1 AS d FROM new_rows"
    return f"""
CREATE OR REPLACE FUNCTION roll_up_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {run(new)}
    ELSIF TG_OP = 'DELETE' THEN
        {run(old)}
    ELSE
        {run(f"{old} UNION ALL {new}")}
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    rollups = sketches._rollups()
    op.execute(_ADD_FUNCTION)
    op.execute(_trigger_function(sketches._add(schema), rollups.ROW))


def downgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    op.execute(sketches._rollups().trigger_function(sketches._add(schema)))
    op.execute(sketches._ADD_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
