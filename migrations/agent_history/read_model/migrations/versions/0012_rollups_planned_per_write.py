"""rollups planned per write: the trigger's statement is planned with each write's row counts

roll_up_executions() ran its statement (0010's, over the transition tables) as static SQL in
plpgsql, which plans it once per connection and keeps that plan. The planner sizes the
transition tables as they are at that first call, and the first call is often empty: a
connection's first upsert fires the UPDATE trigger too, with no updated rows. Planned for one
row, the joins between the statement's CTEs became nested loops, so a later batch of 600 sketch
keys compared 360,000 pairs per join (docs/benchmarks.md). EXECUTE plans the same statement at
every call, with the counts of that write; planning costs far less than those loops.

Only the trigger function changes; the fill (called once per pass) and the tables stay 0010's.

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
    op.execute(_trigger_function(sketches._add(schema), rollups.ROW))


def downgrade() -> None:
    schema = op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())"))
    sketches = revision_module("0010_sketch_arrays.py")
    op.execute(sketches._rollups().trigger_function(sketches._add(schema)))
