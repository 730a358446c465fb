"""Whether to apply a batch, given where each partition's projection stands. Pure.

A batch is applied whole or not at all: once decoded, its records are folded together and let
go (a backlog's batches then hold only what they change), so a batch that starts anywhere but
at a partition's stored position is read again from there instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from agent_history.projector.core.decode import Record


@dataclass(frozen=True, slots=True)
class Stretch:
    """A batch's records of one partition: offsets ``first`` to ``last``, ascending."""

    first: int
    last: int


def stretches_of(records: Iterable[Record]) -> dict[int, Stretch]:
    """Each partition's stretch, partitions in the order they first appear (offsets ascend
    within a partition)."""
    firsts: dict[int, int] = {}
    lasts: dict[int, int] = {}
    for record in records:
        firsts.setdefault(record.partition, record.offset)
        lasts[record.partition] = record.offset
    return {p: Stretch(first, lasts[p]) for p, first in firsts.items()}


def joined(before: Mapping[int, Stretch], after: Mapping[int, Stretch]) -> dict[int, Stretch]:
    """The stretches of two batches fetched one after the other, as one batch's."""
    stretches = dict(before)
    for partition, stretch in after.items():
        had = stretches.get(partition)
        stretches[partition] = stretch if had is None else Stretch(had.first, stretch.last)
    return stretches


def firsts(stretches: Mapping[int, Stretch]) -> dict[int, int]:
    return {p: s.first for p, s in stretches.items()}


@dataclass(frozen=True, slots=True)
class Plan:
    """Where each partition stands once the batch is applied; or, when it is not, where each
    of its partitions is read again from."""

    next_offsets: dict[int, int]
    # Not applied: every partition of the batch, to be read again from here.
    refetch: dict[int, int]
    # Of those, the partitions whose records start after the stored position (a gap).
    gaps: dict[int, int]


def plan_batch(
    stretches: Mapping[int, Stretch],
    stored: Mapping[int, int],
    accept_gap: Set[int] = frozenset(),
) -> Plan:
    """Apply the batch if each partition starts at its stored position (or has none stored);
    else read it again: a partition with records already applied from its stored position, a
    partition past a gap from its stored position too (never skip one), the others from their
    first record.

    A partition in ``accept_gap`` was already read again from its stored position and still
    starts later: the records in between are gone from the log, so the projection carries on
    from what is there.
    """
    behind: dict[int, int] = {}  # records already applied: start at the stored position
    gaps: dict[int, int] = {}
    for partition, stretch in stretches.items():
        position = stored.get(partition)
        if position is None or stretch.first == position:
            continue
        if stretch.first < position:
            behind[partition] = position
        elif partition not in accept_gap:
            gaps[partition] = position
    if behind or gaps:
        return Plan({}, {**firsts(stretches), **behind, **gaps}, gaps)
    return Plan({p: s.last + 1 for p, s in stretches.items()}, {}, {})
