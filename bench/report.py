"""The benchmark's table: printed with rich and kept as Markdown in docs/benchmarks.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

HEADERS = ("measurement", "result", "events/s", "goal", "met", "how")


@dataclass(frozen=True)
class Row:
    measurement: str
    result: str
    rate: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal, or not measured
    how: str = ""

    def cells(self) -> tuple[str, ...]:
        met = {True: "yes", False: "no", None: ""}[self.met]
        return (self.measurement, self.result, self.rate, self.goal, met, self.how)


def per_second(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "n/a"


def show(rows: list[Row], title: str, caption: str) -> None:
    table = Table(title=title, caption=caption, show_lines=True)
    for header in HEADERS:
        table.add_column(
            header, overflow="fold", justify="right" if header == "events/s" else "left"
        )
    for row in rows:
        table.add_row(*row.cells())
    console = Console()
    console.width = max(console.width, 160)  # the how column needs room
    console.print(table)


def markdown(rows: list[Row], command: str, machine: str, notes: list[str]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    table = [line(HEADERS), line(tuple("---" for _ in HEADERS)), *(line(r.cells()) for r in rows)]
    return "\n".join(
        [
            "## Projector",
            "",
            f"`{command}`, one run. Machine: {machine}.",
            "",
            *table,
            "",
            *notes,
            "",
        ]
    )


def write_section(path: Path, section: str) -> None:
    """Replace the "## Projector" section of ``path`` (other sections are left alone)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Projector\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
