"""The fold builds rows by position (see Execution): each argument's comment names its field."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import fields
from pathlib import Path

from agent_history.projector.core import fold
from agent_history.projector.core.fold import Execution

FIELDS = [f.name for f in fields(Execution)]


def _constructions(source: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Execution"
    ]


def _comments(source: str) -> dict[int, str]:
    """Each line's comment, without its "#"."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string[1:].strip() for t in tokens if t.type == tokenize.COMMENT}


def test_every_row_the_fold_builds_names_each_field_in_order() -> None:
    source = Path(fold.__file__).read_text()
    calls = _constructions(source)
    comments = _comments(source)

    assert len(calls) == 4  # from_event's two, _terminal's and merge's
    for call in calls:
        assert not call.keywords, f"line {call.lineno}: keywords (see Execution's docstring)"
        named = [comments.get(arg.end_lineno or arg.lineno) for arg in call.args]
        assert named == FIELDS, f"line {call.lineno}"
