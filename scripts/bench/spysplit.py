"""Sums a py-spy raw profile (``py-spy record -f raw``) per function.

Prints, for the functions that appear in the most samples, the share of the
samples in which each appears anywhere on the stack (inclusive) and as the
innermost frame (self), so that a profile can be quoted as a split in
docs/benchmarks.md. Used by scripts/bench-services.sh (BENCH_PROFILE)."""

from __future__ import annotations

import argparse
import collections
import re

# "name (file.py:12)" -> "name file.py"; native frames have no file.
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    return f"{match['name']} {match['file']}" if match else frame.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", help="a file written by py-spy record -f raw")
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    with open(args.profile, encoding="utf-8") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [frame_name(x) for x in stack.split(";")]
            for name in set(frames):
                inclusive[name] += n
            self_[frames[-1]] += n
    print(f"{total} samples")
    print(f"{'incl':>6} {'self':>6}  function")
    for name, n in inclusive.most_common(args.top):
        print(f"{100 * n / max(total, 1):5.1f}% {100 * self_[name] / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()
