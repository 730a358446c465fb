"""The benchmarks' tables: printed with rich and kept as Markdown sections in docs/."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterable, Sequence
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


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table, one string per line."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(headers), line(["---"] * len(headers)), *map(line, rows)]


def markdown(rows: list[Row], command: str, machine: str, notes: list[str]) -> str:
    heading = ["## Projector", "", f"`{command}`, one run. Machine: {machine}.", ""]
    return "\n".join([*heading, *table(HEADERS, (r.cells() for r in rows)), "", *notes, ""])


def describe_host(folder: Path) -> str:
    """Cores, RAM, kernel, Python, and the file system that ``folder`` is on."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    target = str(folder.resolve())
    fs = max(
        (m for m in mounts if target == m[1] or target.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=["?", "?", "?"],
    )
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {ram:.0f} GiB "
        f"RAM, Linux {platform.release()}; Python {platform.python_version()}; spool on {fs[2]} "
        f"({fs[0]})"
    )


def write_section(path: Path, section: str) -> None:
    """Replace the section of ``path`` that has ``section``'s heading (its first line); other
    sections are left alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    heading = re.escape(section.splitlines()[0])
    pattern = re.compile(rf"^{heading}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
