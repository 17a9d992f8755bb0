#!/usr/bin/env bash
# Runs every test of the project (the body of `make test`):
#   1. setup: the Python venv and the Kafka broker (Maven jars); PostgreSQL
#      too when CI is set or TEST_POSTGRES=1;
#   2. Go unit tests with -race (fuzz seed corpora included) and the relay's
#      integration tests against the broker;
#   3. Python unit tests of both services (SQLite, and PostgreSQL when started)
#      and their integration tests against the broker;
#   4. the compose-file checks;
#   5. the end-to-end suite and the event fault tests: the real gateway binary,
#      the real services and the real broker.
#
# Every suite runs even when an earlier one failed; each prints its counts,
# and the run ends with a table of every step's result and time, then exits
# non-zero if anything failed. A setup step that fails (the broker cannot
# start, say) stops the run at once: the suites would only fail for it.
#
# Ports and places (the same variables as `make run`):
#   KAFKA_PORT [9092], KAFKA_CONTROLLER_PORT [9093]  the broker this run starts
#   KAFKA_BROKERS [127.0.0.1:$KAFKA_PORT]             the broker the tests use
#   PG_PORT [5432]                                     PostgreSQL (CI, TEST_POSTGRES=1)
#   KAFKA_HOME_DIR [.kafka]                            the broker's jars and data
# Every port the tests' own servers need comes from a band below the kernel's
# ephemeral range, so nothing else is to be configured.
#
# Everything started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT}}"

started_pg=0
started_kafka=0
declare -a results=()
failed=0

report() {
  printf '\n==> results\n'
  printf '  %-28s %-7s %6s\n' "step" "result" "time"
  printf '  %s\n' "${results[@]}"
}

cleanup() {
  rc=$?
  trap - EXIT INT TERM
  ((${#results[@]} > 0)) && report
  # Leave a broker that was already running (make run, another shell) alone.
  if ((started_kafka)); then bash scripts/kafka.sh stop || true; fi
  if ((started_pg)); then bash scripts/postgres.sh stop || true; fi
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n==> %s\n' "$*"; }

# run NAME CMD...: a suite; its failure is recorded and the run goes on.
# The command's status is left in last_rc.
last_rc=0
run() {
  local name="$1"; shift
  local t0=${SECONDS} rc=0
  "$@" || rc=$?
  last_rc=${rc}
  local result="ok"
  if ((rc != 0)); then
    result="FAILED"
    failed=1
  fi
  results+=("$(printf '%-28s %-7s %5ds' "${name}" "${result}" $((SECONDS - t0)))")
}

# setup NAME CMD...: a step the suites need; its failure ends the run.
setup() {
  local name="$1"; shift
  run "${name}" "$@"
  if ((failed)); then
    echo "test-all.sh: setup step '${name}' failed; the suites need it, stopping here" >&2
    exit 1
  fi
}

step "setup: Python venv, Kafka broker on ${KAFKA_BROKERS}"
setup "venv" make --no-print-directory venv
if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
  started_kafka=1
fi
setup "kafka start" bash scripts/progress.sh "kafka start" bash scripts/kafka.sh start

if [[ -n "${CI:-}" || "${TEST_POSTGRES:-0}" == 1 ]]; then
  step "setup: PostgreSQL on 127.0.0.1:${PG_PORT:-5432}"
  started_pg=1
  setup "postgres start" bash scripts/progress.sh "postgres start" bash scripts/postgres.sh start
  TEST_DATABASE_URL_A="$(bash scripts/postgres.sh url shop_a)"
  TEST_DATABASE_URL_B="$(bash scripts/postgres.sh url shop_b)"
  export TEST_DATABASE_URL_A TEST_DATABASE_URL_B
fi

step "Go: unit tests (race), fuzz seeds, relay integration (each package as it finishes)"
run "go unit" python3 scripts/gotest.py "go unit" -race -count=1 ./gateway/...

step "Python: unit tests of both services"
run "python unit" env PY="${ROOT}/.venv/bin/python" bash scripts/pytest.sh unit

step "Python: integration tests against the broker"
run "python integration" env PY="${ROOT}/.venv/bin/python" bash scripts/pytest.sh integration

step "compose file checks"
run "compose" .venv/bin/python -m pytest -q -p no:cacheprovider tests/compose

step "end-to-end and event fault tests (gateway + services + broker)"
mkdir -p bin
run "gateway build" go build -o bin/gateway ./gateway/cmd/gateway
if ((last_rc == 0)); then
  export GATEWAY_BIN="${ROOT}/bin/gateway"
  run "go e2e + events" python3 scripts/gotest.py "go e2e + events" -count=1 -timeout 15m ./tests/...
fi

if ((failed)); then
  echo "test-all.sh: some steps FAILED (see the results below and their output above)" >&2
  exit 1
fi
echo "test-all.sh: every step passed"
