"""docs/architecture.md draws the imports the code really has."""

from __future__ import annotations

from tests import architecture


def test_every_module_belongs_to_a_part() -> None:
    import grimp

    graph = grimp.build_graph("agent_history")
    loose = sorted(m for m in graph.modules if m.count(".") > 0 and not architecture.part_of(m))
    assert loose == [], f"modules outside every part of docs/architecture.md: {loose}"


def test_the_import_diagram_is_current() -> None:
    page = architecture.PAGE.read_text()
    assert architecture.page_with(page, architecture.diagram()) == page, (
        "docs/architecture.md's import diagram differs from the code's imports: "
        "run .venv/bin/python -m tests.architecture --write and read the change"
    )


def test_the_diagram_shows_the_layers() -> None:
    edges = architecture.dependencies()
    # The arrows the page explains: services on the contract, the root on the services.
    assert ("agent_history.producer", "agent_history.contract") in edges
    assert ("agent_history.server", "agent_history.api") in edges
    assert not any(target == "agent_history.server" for _, target in edges)
