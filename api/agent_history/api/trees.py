"""A run and its descendants: one recursive statement, then depth-first order in Python.

The statement walks down from the root a level at a time. Each run's children come from the
children index (parent_execution_id, execution_start DESC, id DESC), oldest first and at most
``limit + 1`` of them, through a LATERAL subquery; the outer query takes at most ``limit + 1``
rows without sorting or joining them, and PostgreSQL evaluates a recursive query only as far as
its reader fetches, so the walk stops there however large the tree is. Rows come out a level
at a time, so every kept run's parent is kept too, and the walk goes one level deeper than
asked only to learn whether the tree goes on.

Who sees what: the root must be the caller's (unless ``owner_id`` is None: every user's), as
for one execution; below it, the walk passes only through the caller's runs, so a run of
another user is left out with everything below it. A cycle (A's parent B, B's parent A) cannot
loop: each row carries the ids on its path from the root, a child already on it is not taken,
and the depth bounds the walk anyway.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import RowMapping, Select, all_, bindparam, literal, select, true
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.queries import COLUMN_NAMES, execution_columns, fetch
from agent_history.read_model.tables import agent_executions, agents, users

_e = agent_executions


@dataclass(frozen=True)
class Tree:
    # The root, then its descendants depth-first, children oldest first; each row has
    # ``depth`` besides the list columns.
    rows: Sequence[RowMapping]
    # Why runs are missing: "limit", "depth", or None when none is.
    truncated: Literal["depth", "limit"] | None


async def execution_tree(
    engine: AsyncEngine, execution_id: UUID, *, depth: int, limit: int, owner_id: UUID | None
) -> Tree | None:
    """The tree below ``execution_id`` down to ``depth`` levels, at most ``limit`` runs; None
    if there is no such run (or, with ``owner_id``, none of that user's)."""
    values: dict[str, Any] = {"execution_id": execution_id, "depth": depth + 1, "rows": limit + 1}
    if owner_id is not None:
        values["owner_id"] = owner_id
    fetched = await fetch(engine, _tree_statement(owner_id is not None), values)
    if not fetched:
        return None
    within = [row for row in fetched if row["depth"] <= depth]
    truncated: Literal["depth", "limit"] | None = None
    if len(within) > limit:
        within, truncated = within[:limit], "limit"
    elif len(within) < len(fetched):
        truncated = "depth"
    return Tree(depth_first(within), truncated)


def depth_first(rows: Sequence[RowMapping]) -> list[RowMapping]:
    """The rows of a tree (the root first) in depth-first order, each run's children by
    (execution_start, id); a row whose parent is not among them is left out."""
    if not rows:
        return []
    children: dict[Any, list[RowMapping]] = defaultdict(list)
    for row in rows[1:]:
        children[row["parent_execution_id"]].append(row)
    for siblings in children.values():
        siblings.sort(key=lambda row: (row["execution_start"], row["id"]))
    ordered: list[RowMapping] = []
    stack = [rows[0]]
    while stack:
        row = stack.pop()
        ordered.append(row)
        stack.extend(reversed(children.get(row["id"], ())))
    return ordered


@functools.cache
def _tree_statement(owned: bool) -> Select[Any]:
    """The runs of the tree, a level at a time, each with ``depth`` and the agent's and user's
    names; ``owned``: only the runs of the user bound as ``owner_id``."""
    mine = (_e.c.user_id == bindparam("owner_id"),) if owned else ()
    root = select(
        *(_e.c[name] for name in COLUMN_NAMES),
        literal(0).label("depth"),
        array([_e.c.id]).label("path"),
    ).where(_e.c.id == bindparam("execution_id"), *mine)
    tree = root.cte("tree", recursive=True)
    child = _e.alias("child")
    children = (
        select(*(child.c[name] for name in COLUMN_NAMES))
        .where(
            child.c.parent_execution_id == tree.c.id,
            child.c.id != all_(tree.c.path),
            *((child.c.user_id == bindparam("owner_id"),) if owned else ()),
        )
        .order_by(child.c.execution_start, child.c.id)
        .limit(bindparam("rows"))
        .lateral("children")
    )
    deeper = (
        select(
            children,
            (tree.c.depth + 1).label("depth"),
            tree.c.path.concat(array([children.c.id])).label("path"),
        )
        .select_from(tree.join(children, true()))
        .where(tree.c.depth < bindparam("depth"))
    )
    tree = tree.union_all(deeper)
    # Names by scalar subqueries, not joins: a join could make PostgreSQL read the whole
    # recursive walk before the limit applies.
    agent_name = select(agents.c.name).where(agents.c.id == tree.c.agent_id).scalar_subquery()
    user_name = select(users.c.name).where(users.c.id == tree.c.user_id).scalar_subquery()
    return select(
        *execution_columns(tree),
        agent_name.label("agent_name"),
        user_name.label("user_name"),
        tree.c.depth,
    ).limit(bindparam("rows"))
