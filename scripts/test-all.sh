#!/usr/bin/env bash
# Runs every test of the project (the body of `make test`):
#   1. the Python venv and the Kafka broker (Maven jars) are installed/started;
#      PostgreSQL too when CI is set or TEST_POSTGRES=1;
#   2. Go unit tests with -race (fuzz seed corpora included) and the relay's
#      integration tests against the broker;
#   3. Python unit tests of both services (SQLite, and PostgreSQL when started)
#      and their integration tests against the broker;
#   4. the compose-file checks;
#   5. the end-to-end suite and the event fault tests: the real gateway binary,
#      the real services and the real broker.
# Everything started here is stopped on exit. Any failure fails the run; a
# broker that cannot start fails it too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

started_pg=0
started_kafka=0
cleanup() {
  rc=$?
  # Leave a broker that was already running (make run, another shell) alone.
  if ((started_kafka)); then bash scripts/kafka.sh stop || true; fi
  if ((started_pg)); then bash scripts/postgres.sh stop || true; fi
  exit "${rc}"
}
trap cleanup EXIT INT TERM

step() { printf '\n==> %s\n' "$*"; }
declare -a timings=()
timed() {
  local name="$1"; shift
  local t0=${SECONDS}
  "$@"
  timings+=("$(printf '%-28s %4ds' "${name}" $((SECONDS - t0)))")
}

step "setup: Python venv, Kafka broker"
timed "venv" make --no-print-directory venv
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started_kafka=1
fi
timed "kafka start" bash scripts/kafka.sh start
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"

if [[ -n "${CI:-}" || "${TEST_POSTGRES:-0}" == 1 ]]; then
  step "setup: PostgreSQL"
  timed "postgres start" bash scripts/postgres.sh start
  started_pg=1
  TEST_DATABASE_URL_A="$(bash scripts/postgres.sh url shop_a)"
  TEST_DATABASE_URL_B="$(bash scripts/postgres.sh url shop_b)"
  export TEST_DATABASE_URL_A TEST_DATABASE_URL_B
fi

step "Go: unit tests (race), fuzz seeds, relay integration"
timed "go unit" go test -race -count=1 ./gateway/...

step "Python: unit tests of both services"
timed "python unit" env PY="${ROOT}/.venv/bin/python" bash scripts/pytest.sh unit

step "Python: integration tests against the broker"
timed "python integration" env PY="${ROOT}/.venv/bin/python" bash scripts/pytest.sh integration

step "compose file checks"
timed "compose" .venv/bin/python -m pytest -q -p no:cacheprovider tests/compose

step "end-to-end and event fault tests (gateway + services + broker)"
mkdir -p bin
go build -o bin/gateway ./gateway/cmd/gateway
export GATEWAY_BIN="${ROOT}/bin/gateway"
timed "go e2e + events" go test -count=1 -timeout 15m ./tests/...

step "timings"
printf '  %s\n' "${timings[@]}"
