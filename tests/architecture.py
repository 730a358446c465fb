"""The import diagram in docs/architecture.md, drawn from the code's own imports.

    .venv/bin/python -m tests.architecture           # exit 1 when the page is out of date
    .venv/bin/python -m tests.architecture --write   # redraw it

tests/unit/test_architecture.py fails when the page and the code disagree, so the diagram a
newcomer reads is the one the code has. The rules themselves are import-linter contracts
(pyproject.toml, run by ./run test); this only draws what is there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp

PAGE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BEGIN = "<!-- import-diagram:begin (python -m tests.architecture --write) -->"
END = "<!-- import-diagram:end -->"

# The parts of the house, most specific first: a module belongs to the first part it is in.
PARTS = {
    "agent_history.server": "server: CLI, demo, wiring",
    "agent_history.devservices": "devservices: local Kafka + PostgreSQL",
    "agent_history.api": "api: HTTP reads",
    "agent_history.projector.core": "projector.core: decode, fold, plan, verdicts (pure)",
    "agent_history.projector": "projector: Kafka and SQL I/O",
    "agent_history.producer": "producer: track_execution",
    "agent_history.read_model": "read_model: tables, migrations",
    "agent_history.contract": "contract: events, statuses",
}


def part_of(module: str) -> str | None:
    for part in PARTS:
        if module == part or module.startswith(part + "."):
            return part
    return None


def dependencies() -> set[tuple[str, str]]:
    """(importer, imported) for every pair of parts with at least one import between them."""
    graph = grimp.build_graph("agent_history")
    edges = set()
    for module in graph.modules:
        source = part_of(module)
        for imported in graph.find_modules_directly_imported_by(module):
            target = part_of(imported)
            if source and target and source != target:
                edges.add((source, target))
    return edges


def diagram() -> str:
    """The Mermaid flowchart of the parts and their imports, in a stable order."""
    node = {part: part.removeprefix("agent_history.").replace(".", "_") for part in PARTS}
    lines = ["```mermaid", "flowchart TD"]
    lines += [f'    {node[part]}["{label}"]' for part, label in PARTS.items()]
    order = list(PARTS)
    for source, target in sorted(dependencies(), key=lambda e: (order.index(e[0]), e[1])):
        lines.append(f"    {node[source]} --> {node[target]}")
    lines.append("```")
    return "\n".join(lines)


def page_with(text: str, block: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="redraw the diagram in the page")
    args = parser.parse_args()
    text = PAGE.read_text()
    wanted = page_with(text, diagram())
    if args.write:
        PAGE.write_text(wanted)
        return 0
    if wanted != text:
        print(f"{PAGE} is out of date: run python -m tests.architecture --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
