"""Where a py-spy profile's time goes: ``python -m bench.stacks PROFILE.txt [--top N]``.

Reads py-spy's raw format (one ``frame;frame;...;frame count`` line per stack) and prints the
share of samples in which each function is on the stack (inclusive) and at the top (self).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \((?P<file>[^)]*?):\d+\)$")


def _frame(raw: str) -> str:
    """``function (path/to/file.py:12)`` without the line number and with a short path: from
    the library's folder on (``fastapi/routing.py``), ours from the package's (``api/app.py``)."""
    match = _LINE.search(raw)
    if match is None:
        return raw
    path = match["file"].split("site-packages/")[-1].split("agent_history/")[-1]
    return f"{raw[: match.start()]} ({path})"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total, inclusive, own = 0, Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if f]
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    total, inclusive, own = summarise(args.profile)
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"--- {title} (share of {total} samples)")
        for frame, n in counts.most_common(args.top):
            print(f"{n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
