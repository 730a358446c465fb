"""Progress display pieces for long-running commands."""

from __future__ import annotations

from rich.progress import ProgressColumn, Task
from rich.text import Text


class RateColumn(ProgressColumn):
    """Events per second, smoothed by rich over its recent samples."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:>10,.0f} events/s", style="progress.data.speed")
