"""rollups planned per write: a big write's trigger statement is planned with its own row counts

roll_up_executions() ran its statement (0010's, over the transition tables) as static SQL in
plpgsql, which plans it once per connection and keeps that plan. The planner sizes the
transition tables as they are at that first call, and the first call is often empty: a
connection's first upsert fires the UPDATE trigger too, with no updated rows. Planned for one
row, the joins between the statement's CTEs became nested loops, so a later batch of 600 sketch
keys compared 360,000 pairs per join (docs/benchmarks.md). A write of 100 changed rows or more
now runs the statement through EXECUTE, planned at every call with that write's counts: the
planning costs far less than those loops. Smaller writes (a projector that keeps up: a batch
every few ms) keep the cached plan, which only writes of that size plan, and whose loops stay
small there: planning at every call cost such a projector 12 ms at p50 of its freshness, and
with the cut at 1,000 rows, the live drain's part-filled batches ran the one-row plan again.

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


# Writes of fewer changed rows keep the plan plpgsql caches (planned for small writes: see
# trigger_function); bigger ones are planned with their own counts.
_PLANNED_PER_CALL_FROM = 100


def run_statement(add: str, changes: str, count: str) -> str:
    """plpgsql running ``add`` over ``changes`` (rows of ``count``): the cached plan for small
    writes, planned at the call for big ones."""
    statement = f"WITH changes AS ({changes}) {add.rstrip().rstrip(';')}"
    # Small writes run the cached plan, which only such writes ever plan: planning this
    # statement costs them more than running it. Dollar-quoted for EXECUTE: the statement has
    # quotes of its own.
    return f"""IF {count} < {_PLANNED_PER_CALL_FROM} THEN
            {statement};
        ELSE
            EXECUTE $statement$ {statement} $statement$;
        END IF;"""


def trigger_function(add: str, row: str, *branches: tuple[str, str]) -> str:
    """0006's roll_up_executions(), each branch's statement planned per call when it is big;
    ``branches``, (condition, plpgsql) pairs, are tried before 0006's three (migration 0014)."""

    def run(changes: str, rows: str) -> str:
        return run_statement(add, changes, f"(SELECT count(*) FROM {rows})")

    old, new = f"SELECT {row}, -1 AS d FROM old_rows", f"SELECT {row}, 1 AS d FROM new_rows"
    cases = [
        *branches,
        ("TG_OP = 'INSERT'", run(new, "new_rows")),
        ("TG_OP = 'DELETE'", run(old, "old_rows")),
    ]
    tried = "\n    ELS".join(f"IF {when} THEN\n        {then}" for when, then in cases)
    return f"""
CREATE OR REPLACE FUNCTION roll_up_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {tried}
    ELSE
        {run(f"{old} UNION ALL {new}", "new_rows")}
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
    op.execute(trigger_function(sketches._add(schema), rollups.ROW))


def downgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    op.execute(sketches._rollups().trigger_function(sketches._add(schema)))
    op.execute(sketches._ADD_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
