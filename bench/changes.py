"""CPU time of the projector's pure batch step, ``changes_of`` (decode, fold, names), per event.

    .venv/bin/python -m bench.changes [--events 100000] [--batch 10000] [--runs 5]

The benchmark's workload (bench/workload.py), as records in batches of ``--batch``, under the
projector's collector thresholds; prints the best of ``--runs`` passes over all batches, in
µs of process CPU time per event. To compare two versions of the code in one session, run it
alternately from each work tree (PYTHONPATH=<tree>/projector:<tree>/contract in front).
"""

from __future__ import annotations

import argparse
import gc
import time

from agent_history.projector.core import changes
from agent_history.projector.pipeline import collecting_rarely
from bench.workload import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    records = generate(args.events, 6).handed_over()
    batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
    best = float("inf")
    with collecting_rarely():
        for _ in range(args.runs):
            gc.collect()
            start = time.process_time()
            for batch in batches:
                changes.changes_of(batch, 1 << 20)
            best = min(best, time.process_time() - start)
    print(
        f"{changes.__file__}: {len(records)} events, best of {args.runs}: "
        f"{best / len(records) * 1e6:.2f} µs/event"
    )


if __name__ == "__main__":
    main()
