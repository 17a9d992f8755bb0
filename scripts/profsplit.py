#!/usr/bin/env python3
"""Split the CPU of one part of a gwbench profile into the gateway's jobs.

gwbench labels every goroutine with the part it belongs to (client, proxy,
upstream, gateway), so one profile of a run holds each part's CPU apart.
This script reads `go tool pprof -traces` of such a profile and puts every
sample of the chosen part into the first job (below, in order) whose
pattern matches a frame of its stack, and prints each job's share, plus the
share of the part's samples that are allocation (mallocgc) and GC assist,
and the process-wide share of the background GC workers (unlabelled).

    go build -o bin/gwbench ./gateway/cmd/gwbench
    bin/gwbench -variants=false -only 'gateway REST' -cpuprofile /tmp/cpu.prof
    python3 scripts/profsplit.py bin/gwbench /tmp/cpu.prof [part [requests]]

With requests (the part's requests over the run: gwbench prints them per
target at the end), each job's CPU per request is printed too.

Standard library only.
"""

import re
import subprocess
import sys

# Jobs in order of precedence: a sample counts for the first that matches.
JOBS = [
    ("access log", r"server\.logAccess|server\.\(\*accessLog\)|accesslog\.|log/slog\."),
    ("request id, traceparent", r"server\.newRequestID|server\.newTraceparent|google/uuid\.|reqid\."),
    (
        "upstream client (pool, transport, its connections)",
        r"/internal/upstream\.|net/http\.\(\*persistConn\)|net/http\.\(\*Transport\)|valyala/fasthttp\.",
    ),
    ("events (payload, envelope, outbox)", r"/internal/events\.|/internal/outbox\."),
    (
        "JSON <-> proto (request in, upstream out and back, response out)",
        r"protobuf/encoding/protojson\.|encoding/json\.",
    ),
    (
        "net/http server (read, parse, write, flush)",
        r"net/http\.\(\*response\)|net/http\.\(\*chunkWriter\)|net/http\.\(\*conn\)\.readRequest|"
        r"net/http\.readRequest|net/http\.\(\*conn\)\.finalFlush|bufio\.|net/textproto\.",
    ),
    ("grpc-gateway runtime (routing, metadata, response forwarding)", r"grpc-gateway/v2/runtime\.|/gen/shop/"),
    ("gateway middleware, interceptors, forwarder", r"/internal/server\.|/internal/forward\.|/internal/reqinfo\."),
    ("gRPC server transport (HTTP/2)", r"google\.golang\.org/grpc"),
    ("net/http server (connection loop, headers)", r"net/http\."),
    ("other (scheduler, netpoll, timers)", r"."),
]
ALLOC = re.compile(r"runtime\.mallocgc|runtime\.gcAssist|runtime\.growslice|runtime\.newobject")
GCBG = re.compile(r"runtime\.gcBgMarkWorker")


def parse_value(s):
    """'10ms' / '1.20s' / '500us' -> seconds."""
    m = re.fullmatch(r"([0-9.]+)(ns|us|µs|ms|s)", s)
    if not m:
        return 0.0
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    return float(m.group(1)) * scale


def samples(binary, profile):
    out = subprocess.run(
        ["go", "tool", "pprof", "-traces", binary, profile], check=True, capture_output=True, text=True
    ).stdout
    for block in out.split("-----------+-------------------------------------------------------")[1:]:
        part, value, frames = None, 0.0, []
        for line in block.splitlines():
            s = line.strip()
            if not s:
                continue
            if s.startswith("part:"):
                part = s.split(None, 1)[1].strip()
                continue
            fields = s.split(None, 1)
            if value == 0.0 and len(fields) == 2 and re.fullmatch(r"[0-9.]+(ns|us|µs|ms|s)", fields[0]):
                value, s = parse_value(fields[0]), fields[1]
            frames.append(s)
        if value:
            yield part, value, frames


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, profile = sys.argv[1], sys.argv[2]
    want = sys.argv[3] if len(sys.argv) > 3 else "gateway"
    requests = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    jobs = [(name, re.compile(p)) for name, p in JOBS]
    per_job = {name: 0.0 for name, _ in jobs}
    total = part_total = alloc = gcbg = 0.0
    for part, value, frames in samples(binary, profile):
        total += value
        if part is None and any(GCBG.search(f) for f in frames):
            gcbg += value
        if part != want:
            continue
        part_total += value
        if any(ALLOC.search(f) for f in frames):
            alloc += value
        for name, rx in jobs:
            if any(rx.search(f) for f in frames):
                per_job[name] += value
                break
    if not part_total:
        sys.exit(f"no samples labelled part={want}")
    print(f"part={want}: {part_total:.2f}s of {total:.2f}s sampled ({100 * part_total / total:.0f}%)")
    print()
    per_req = (lambda v: f" {1e6 * v / requests:.1f} µs |") if requests else (lambda v: "")
    print("| job | share |" + (" CPU per request |" if requests else ""))
    print("|---|---:|" + ("---:|" if requests else ""))
    for name, _ in jobs:
        print(f"| {name} | {100 * per_job[name] / part_total:.1f}% |" + per_req(per_job[name]))
    if requests:
        print(f"| **all** | 100% | {1e6 * part_total / requests:.1f} µs |")
    print()
    print(f"allocation and GC assist, across the jobs above: {100 * alloc / part_total:.1f}% of part={want}")
    print(f"background GC workers (unlabelled, whole process): {100 * gcbg / total:.1f}% of all samples")


if __name__ == "__main__":
    main()
