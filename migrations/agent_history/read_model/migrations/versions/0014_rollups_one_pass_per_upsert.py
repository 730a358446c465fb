"""rollups in one pass per upsert: the projector's updated runs are rolled up with its new ones

The projector writes a batch with one INSERT ... ON CONFLICT DO UPDATE. PostgreSQL fires that
statement's AFTER UPDATE trigger (the runs it updated) and then its AFTER INSERT trigger (the
runs it inserted), and each ran roll_up_executions()'s statement: every batch rewrote an
agent's current rollup rows twice, and the second pass cost almost as much as the first, as
that cost goes with the rows rewritten, not the runs. Without the UPDATE pass, a 1M-event live
drain took 29.5 / 29.0 s against 33.9 / 36.2 s (docs/benchmarks.md).

An upsert that sets agent_history.upsert to 'on' for its transaction (the projector's: a CTE of
the statement itself, projector/merge.py) now has its UPDATE trigger keep the changed rows in a
temporary table of the session and mark them 'deferred'; the INSERT trigger, fired next for the
same statement, rolls them up with the inserted rows in one pass and clears both. Only an
INSERT ... ON CONFLICT DO UPDATE on agent_executions may set it: a plain UPDATE would leave its
rows unrolled. Every other write (prune and erase, a writer that does not set it) is rolled up
as before, and so is an upsert by a role that may not create temporary tables (the TEMPORARY
privilege on the database). Only roll_up_executions() changes; the status counts
(count_executions) keep their two passes, which cost a fifth as much.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agent_history.read_model.migrate import revision_module

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ROW's columns (0006) with their types, and d. A session keeps its table: a revision that
# changes its columns must name it anew, or sessions from before would write the old shape.
_DEFERRED = "rollup_deferred_0014"
_DEFERRED_TABLE = f"""CREATE TEMPORARY TABLE {_DEFERRED} (
                agent_id uuid, status text, execution_start timestamptz, model text,
                cost_currency text, input_tokens bigint, output_tokens bigint, cost numeric,
                ms bigint, d integer) ON COMMIT DELETE ROWS"""


def _trigger_function(add: str, row: str) -> str:
    """0012's roll_up_executions(), with an upsert's UPDATE pass folded into its INSERT pass."""
    planned = revision_module("0012_rollups_planned_per_write.py")
    old, new = f"SELECT {row}, -1 AS d FROM old_rows", f"SELECT {row}, 1 AS d FROM new_rows"
    deferred = f"SELECT * FROM pg_temp.{_DEFERRED}"
    # The runs changed, as 0012 counts them (the updated ones once, by their new row).
    counted = (
        f"(SELECT count(*) FROM new_rows) + (SELECT count(*) FROM pg_temp.{_DEFERRED} WHERE d = 1)"
    )
    # The second trigger of an upsert whose updated rows wait in the session's table.
    roll_up_both = f"""PERFORM set_config('agent_history.upsert', '', true);
        {planned.run_statement(add, f"{new} UNION ALL {deferred}", counted)}
        DELETE FROM pg_temp.{_DEFERRED};"""
    # An upsert's UPDATE trigger: PostgreSQL fires its INSERT trigger next, which rolls these
    # rows up with the inserted ones (a statement-level trigger fires even when the statement
    # inserted nothing).
    defer = f"""IF to_regclass('pg_temp.{_DEFERRED}') IS NULL THEN
            {_DEFERRED_TABLE};
        END IF;
        INSERT INTO pg_temp.{_DEFERRED} {old} UNION ALL {new};
        PERFORM set_config('agent_history.upsert', 'deferred', true);"""
    setting = "current_setting('agent_history.upsert', true)"
    return planned.trigger_function(
        add,
        row,
        (f"TG_OP = 'INSERT' AND {setting} = 'deferred'", roll_up_both),
        (
            f"TG_OP = 'UPDATE' AND {setting} = 'on'"
            " AND has_database_privilege(current_database(), 'TEMPORARY')",
            defer,
        ),
    )


def upgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    op.execute(_trigger_function(sketches._add(schema), sketches._rollups().ROW))


def downgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    planned = revision_module("0012_rollups_planned_per_write.py")
    op.execute(planned.trigger_function(sketches._add(schema), sketches._rollups().ROW))
