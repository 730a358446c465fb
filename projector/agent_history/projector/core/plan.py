"""Which records of a batch to apply, given where each partition's projection stands. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from agent_history.projector.core.decode import Record


@dataclass(frozen=True, slots=True)
class Plan:
    """Which records of a batch to apply, and where each partition stands afterwards."""

    fresh: list[Record]
    next_offsets: dict[int, int]
    # Partitions whose records start after the stored position: seek back, apply nothing.
    rewind: dict[int, int]


def plan_batch(
    records: Iterable[Record], stored: Mapping[int, int], accept_gap: Set[int] = frozenset()
) -> Plan:
    """Drop records already applied (below the stored offset); refuse to skip over a gap.

    A partition in ``accept_gap`` was already rewound once and still starts later: the records
    in between are gone from the log, so the projection carries on from what is there.
    """
    by_partition: dict[int, list[Record]] = {}
    for record in records:
        by_partition.setdefault(record.partition, []).append(record)
    fresh: list[Record] = []
    next_offsets: dict[int, int] = {}
    rewind: dict[int, int] = {}
    for partition, recs in by_partition.items():
        position = stored.get(partition)
        new = [r for r in recs if position is None or r.offset >= position]
        if not new:
            continue
        if position is not None and new[0].offset > position and partition not in accept_gap:
            rewind[partition] = position
            continue
        fresh.extend(new)
        next_offsets[partition] = new[-1].offset + 1
    return Plan(fresh, next_offsets, rewind)
