#!/usr/bin/env bash
# The body of `make bench-live`: the live updates (Watch streams) on the
# real stack (tests/livebench): latency from a mutation's answer to the
# event on the owner's SSE stream with 1 and LIVE_BENCH_SUBSCRIBERS (1000)
# subscribers, requests/s of a public read with that many idle streams open
# against none (the ratio), and memory per idle stream at LIVE_BENCH_IDLE
# (10000) open gRPC streams. See tests/livebench for every knob
# (LIVE_BENCH_MUTATIONS, LIVE_BENCH_CLIENTS, LIVE_BENCH_DURATION,
# LIVE_BENCH_ROUNDS, LIVE_BENCH_PER_CONN).
# Load guard (scripts/lib/load.sh): the 1-minute load average is printed at
# the start and at the end; above 1.5 at the start the script waits up to
# BENCH_LOAD_WAIT s (120) and then refuses to measure (exit 3). The broker
# of scripts/kafka.sh on KAFKA_PORT (9092) is started when it is not running
# and stopped again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=scripts/lib/load.sh
source "${ROOT}/scripts/lib/load.sh"
load_guard bench-live
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT}}"
started=0
cleanup() {
  if ((started)); then bash scripts/kafka.sh stop || true; fi
  load_at_end
}
trap cleanup EXIT

echo "[bench-live] open files allowed (ulimit -n): $(ulimit -n); the idle streams share a few gRPC connections"
make -s venv
mkdir -p bin
go build -o bin/gateway ./gateway/cmd/gateway
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started=1
  bash scripts/kafka.sh start
fi

GATEWAY_BIN="${ROOT}/bin/gateway" \
  go test -tags livebench -count=1 -v -timeout 30m -run '^TestLiveBench$' ./tests/livebench |
  grep --line-buffered -v -E '^=== RUN|^\s+(==== |[0-9]{4}-[0-9]{2}-[0-9]{2} )'
