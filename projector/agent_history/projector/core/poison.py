"""The kind of a dead-letter reason: a fixed, small set, for metrics labels. Pure; no I/O.

A reason names the field or value at fault (decode.py), so there are as many reasons as
there are mistakes a writer can make; a kind is what an operator acts on.
"""

from __future__ import annotations

from typing import Literal

PoisonKind = Literal[
    "invalid_event", "unknown_type", "too_large", "unstorable", "key_mismatch", "tombstone", "other"
]
POISON_KINDS: tuple[PoisonKind, ...] = (
    "invalid_event",
    "unknown_type",
    "too_large",
    "unstorable",
    "key_mismatch",
    "tombstone",
    "other",
)

# The first words of each reason decode.py and the contract give, and its kind.
_PREFIXES: tuple[tuple[str, PoisonKind], ...] = (
    ("invalid event: ", "invalid_event"),
    ("unknown type: ", "unknown_type"),
    ("record value is ", "too_large"),
    ("event data contains ", "unstorable"),
    ("event time ", "unstorable"),
    ("record key does not match", "key_mismatch"),
    ("empty record value", "tombstone"),
)


def poison_kind(reason: str) -> PoisonKind:
    """The kind of a dead-letter reason; ``other`` for one this version does not know."""
    for prefix, kind in _PREFIXES:
        if reason.startswith(prefix):
            return kind
    return "other"
