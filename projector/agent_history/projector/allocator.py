"""The C allocator of the projector's processes (live, replay and its loaders): each big block is
mapped on its own, so memory freed is given back (docs/benchmarks.md, "seventh round").

glibc serves a block of 128 KiB or more with a mapping of its own, but raises that threshold
to the size of any such block freed (up to 32 MiB). The projector frees a Kafka fetch's
partition data (up to 8 MiB each) and a batch's JSON (several MiB) all the time: after its first
batches those came from the heap, the small objects of the next batches filled the holes they
left, and the heap only grew. Fixed at its default, the threshold keeps every big block out of
the heap, for the page faults of fresh mappings (about 5 % of the projector's CPU).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h; setting it also turns the dynamic threshold off
DEFAULT_MMAP_THRESHOLD = 128 << 10


def map_big_blocks(threshold: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Have malloc map every block of ``threshold`` bytes or more on its own, for the rest of
    the process; False, with a warning, where the C library takes no such setting (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols the process has loaded: its libc's
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        if mallopt(_M_MMAP_THRESHOLD, threshold) == 1:
            return True
    # Say so: the process then keeps what its heap grew to (docs/benchmarks.md).
    log.warning("the C library took no mmap threshold: freed big blocks may stay in the heap")
    return False
