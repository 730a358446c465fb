"""The statuses of an execution: what the fold decides, the table stores and the API filters by."""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

# In the order a run goes through them; timed_out is a watchdog's verdict, not the worker's.
Status: TypeAlias = Literal["pending", "running", "completed", "failed", "cancelled", "timed_out"]
STATUSES: tuple[Status, ...] = get_args(Status)
TERMINAL_STATUSES: frozenset[Status] = frozenset({"completed", "failed", "cancelled", "timed_out"})
