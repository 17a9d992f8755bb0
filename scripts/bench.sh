#!/usr/bin/env bash
# The body of `make bench`. Everything runs on loopback and is bounded in
# time. Figures are ratios against a baseline measured in the same run,
# because the machine is shared and noisy.
#   1. gwbench: gateway REST GET and POST (chosen in-process dispatch, and
#      the designs not chosen) and gRPC against a plain httputil.ReverseProxy,
#      one fast upstream, interleaved rounds; req/s, p50, p99, ratio; then
#      the gateway binary (authentication on, every client sending one
#      cached token) and the proxy each in a process of its own, with each
#      one's CPU per request and RSS, at full speed (throughput) and at one
#      offered load for both (latency: p50, p99).
#   2. gwbench -auth: REST with authentication off against on (a cached
#      token; an owner RPC too), same gateway code, interleaved rounds.
#   3. go test -bench: the REST path in process, the upstream pool against
#      http.DefaultClient, token verification (cached, first-seen RS256 and
#      ES256), outbox appends (fsync vs none), relay drain to the real broker.
#   4. gwbench -events (when the gwbench built has the flag): mutations with
#      events on against off.
# Load guard (scripts/lib/load.sh): the 1-minute load average is printed at
# the start and at the end; above 1.5 at the start the script waits up to
# BENCH_LOAD_WAIT s (120) and then refuses to measure (exit 3).
# BENCH_IGNORE_LOAD=1 runs anyway with every output line marked NOT A FIGURE.
# Env: BENCH_DURATION (3s), BENCH_ROUNDS (3), BENCH_CLIENTS (64), BENCH_RATE
# (3000 requests/s, the offered load of the latency run), BENCH_BENCHTIME
# (2s, go test -benchtime of step 3); the broker of scripts/kafka.sh on
# KAFKA_PORT (9092), started when it is not running and stopped again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=scripts/lib/load.sh
source "${ROOT}/scripts/lib/load.sh"
load_guard bench
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_BROKERS="127.0.0.1:${KAFKA_PORT}"
started=0
cleanup() {
  if ((started)); then bash scripts/kafka.sh stop || true; fi
  load_at_end
}
trap cleanup EXIT

mkdir -p bin
go build -o bin/gwbench ./gateway/cmd/gwbench

echo "==> gateway vs reverse proxy, in process"
bin/gwbench -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-3}" -c "${BENCH_CLIENTS:-64}"

echo
echo "==> gateway binary (auth on, cached token) vs reverse proxy, each in a process of its own (hop CPU, RSS)"
CGO_ENABLED=0 go build -trimpath -o bin/gateway ./gateway/cmd/gateway
bin/gwbench -gateway-bin bin/gateway -auth -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-3}" -c "${BENCH_CLIENTS:-64}"

echo
echo "==> the same at one offered load for both (${BENCH_RATE:-3000} requests/s): latency"
bin/gwbench -gateway-bin bin/gateway -auth -rate "${BENCH_RATE:-3000}" -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-3}" -c "${BENCH_CLIENTS:-64}"

echo
echo "==> REST with authentication off vs on"
bin/gwbench -auth -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-3}" -c "${BENCH_CLIENTS:-64}"

echo
echo "==> go benchmarks (in process)"
go test -run '^$' -bench . -benchtime "${BENCH_BENCHTIME:-2s}" -count 1 \
  ./gateway/internal/server ./gateway/internal/upstream ./gateway/internal/auth ./gateway/internal/outbox ./gateway/internal/logbuf

if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started=1
  bash scripts/kafka.sh start
fi
echo
echo "==> relay drain to the real broker"
go test -run '^$' -bench BenchmarkRelayDrain -benchtime 1x -count 3 ./gateway/internal/relay

if bin/gwbench -h 2>&1 | grep -q -- '-events'; then
  echo
  echo "==> mutations with events on vs off"
  bin/gwbench -events -duration "${BENCH_DURATION:-3s}" -rounds "${BENCH_ROUNDS:-3}" -c "${BENCH_CLIENTS:-64}"
fi
