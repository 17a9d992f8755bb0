#!/usr/bin/env python3
"""Runs `go test -json ARGS...` and prints each package as it finishes.

`go test` without -v says nothing until a package is done and prints the
packages in order, so a slow first package (the race detector's build,
an integration test) hides every other result for minutes. This prints one
line per package the moment it passes or fails, the output of every failed
test (and of a failed build), and a closing count:

    go unit: 412 passed, 0 failed, 3 skipped (21 packages)

Usage: scripts/gotest.py LABEL [go test flags and packages...]
Exits with go test's status. Needs only the Python standard library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict


def main() -> int:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: scripts/gotest.py LABEL [go test args...]\n")
        return 2
    label, args = sys.argv[1], sys.argv[2:]
    proc = subprocess.Popen(["go", "test", "-json", *args], stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    output: dict[tuple[str, str], list[str]] = defaultdict(list)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    packages = {"pass": 0, "fail": 0}
    for line in proc.stdout:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            sys.stdout.write(line)  # a build error or other plain output
            continue
        action, pkg, test = ev.get("Action"), ev.get("Package", ""), ev.get("Test", "")
        if action in ("output", "build-output"):
            output[(pkg or ev.get("ImportPath", ""), test)].append(ev.get("Output", ""))
        elif action == "build-fail":
            ip = ev.get("ImportPath", "")
            sys.stdout.write(f"BUILD FAIL {ip}\n{''.join(output.pop((ip, ''), []))}")
        elif action in counts and test:
            counts[action] += 1
            if action == "fail":
                sys.stdout.write(f"--- FAIL {pkg} {test}\n{''.join(output.get((pkg, test), []))}")
            if "/" not in test:  # subtests' output stays with their top-level test
                output.pop((pkg, test), None)
        elif action in ("pass", "fail", "skip") and not test:
            elapsed = ev.get("Elapsed", 0.0)
            if action == "skip":
                continue  # a package without tests
            packages[action] += 1
            word = "ok  " if action == "pass" else "FAIL"
            sys.stdout.write(f"{word} {pkg} {elapsed:.1f}s\n")
            if action == "fail":
                sys.stdout.write("".join(output.get((pkg, ""), [])))
            sys.stdout.flush()
    rc = proc.wait()
    sys.stdout.write(
        f"{label}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
        f"({packages['pass'] + packages['fail']} packages, {packages['fail']} failed)\n"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
