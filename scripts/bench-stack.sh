#!/usr/bin/env bash
# The body of `make bench-stack`: the shop scaled out on this machine, as a
# cluster would run it, under the seed's journey from many users
# (tests/stack, with STACK_BENCH=1). For each shape (gateways x instances of
# each service; the instances of a service share one PostgreSQL database,
# topics partitioned, events on) it prints progress, then one table:
# journeys/s, p50/p99 per step, and the ratio to the first shape. Every run
# also checks correctness: no oversell, one event per committed mutation,
# carts converged.
#
# Env (defaults in brackets): STACK_SHAPES ["1x1 2x2"] STACK_DURATION [20s]
# STACK_USERS [48] KAFKA_BROKERS [127.0.0.1:9092] (KAFKA_PORT for a broker
# this script starts) PG_PORT [5432] (PostgreSQL is started when it is not
# running, and stopped again). Extra environment for the services:
# STACK_SERVICE_ENV, e.g. "WEB_CONCURRENCY=2".
#
# Load guard (scripts/lib/load.sh): the 1-minute load average is printed at
# the start and at the end; above 1.5 at the start the script waits up to
# BENCH_LOAD_WAIT s (120) and then refuses to measure (exit 3).
# BENCH_IGNORE_LOAD=1 runs anyway with every output line marked NOT A FIGURE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=scripts/lib/load.sh
source "${ROOT}/scripts/lib/load.sh"
load_guard bench-stack
started=0
cleanup() {
  if ((started)); then bash scripts/kafka.sh stop || true; fi
  load_at_end
}
trap cleanup EXIT

make -s venv
mkdir -p bin
go build -o bin/gateway ./gateway/cmd/gateway
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started=1
  bash scripts/kafka.sh start
fi

GATEWAY_BIN="${ROOT}/bin/gateway" STACK_BENCH=1 \
  go test -count=1 -v -timeout 60m -run '^TestClusterJourney$' ./tests/stack |
  grep --line-buffered -v -E '^=== RUN|^\s+(==== |[0-9]{4}-[0-9]{2}-[0-9]{2} )'
