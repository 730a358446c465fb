"""rollups with room to update: their pages are filled to 70 %, so a rewrite stays on its page

Every batch the projector writes rewrites the same rollup rows: an agent's current hour, day
and month in execution_rollups and in both duration sketches. A sketch row is an array of a few
hundred buckets (~2 kB), and full pages left no room for its new version there: each rewrite
went to another page, with new index entries, and left the old one for VACUUM. A 1M-event
backlog grew each sketch table to ~260 MB around its 600 live rows (docs/benchmarks.md). Pages
filled to 70 % keep room for the next version of a row up to ~2.4 kB on the same page: updates
are then heap-only (HOT) and PostgreSQL prunes the old versions as it reads the page. The price
is closed periods' rows taking ~1.4 x the space (50 % measured as fast and cost 2 x).

Takes effect for pages written from now on: a row moves to a page with room at its next update.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (
    "execution_rollups",
    "execution_duration_sketches",
    "execution_duration_sketches_all_models",
)


def upgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
