#!/usr/bin/env bash
# The body of `make bench-services`: the Python services against the
# framework's own ceiling, measured with wrk in one run on loopback.
#
# Targets (each a wrk run; rounds interleave the targets so that the shared
# machine's noise hits all of them alike; the figure is the median round):
#   hello          a hello-world FastAPI GET /stock/{id} (scripts/bench/helloapp),
#                  served exactly as the services are: the baseline
#   a-sqlite       service A GET /stock/1, direct, SQLite
#   a-pg           service A GET /stock/1, direct, PostgreSQL (BENCH_PG=1)
#   gw-stock       the gateway in front of a-sqlite, GET /stock/1
#   a-add          service A POST /cart/add direct, random users, SQLite
#   gw-add         POST /cart/add through the gateway, events on (outbox +
#                  broker), random users
# then the growth check: 10,000 adds through the gateway to one user's cart
# and to many users, rate of the last tenth against the first
# (scripts/bench/growth.py).
#
# Every process runs with the same WEB_CONCURRENCY (uvicorn workers).
# Env (defaults in brackets): BENCH_DURATION [5s] BENCH_ROUNDS [3]
# BENCH_CONNECTIONS [32] WEB_CONCURRENCY [2] BENCH_PG [1] BENCH_GROWTH [1]
# BENCH_PORT [18100] (uses BENCH_PORT..+9) KAFKA_BROKERS [127.0.0.1:9092]
# BENCH_TARGETS [all of the above, space-separated] BENCH_PROFILE [] (a
# target name: py-spy records that target's server during its last round,
# flame graph in bin/profile-TARGET.svg and the raw samples next to it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

DURATION="${BENCH_DURATION:-5s}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
BENCH_PG="${BENCH_PG:-1}"
PORT="${BENCH_PORT:-18100}"
BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
TARGETS="${BENCH_TARGETS:-hello a-sqlite a-pg gw-stock a-add gw-add}"
PROFILE="${BENCH_PROFILE:-}"
PY="${ROOT}/.venv/bin/python"
WORK="$(mktemp -d)"
declare -A PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }
make -s venv
[[ -n "${PROFILE}" ]] && { "${ROOT}/.venv/bin/py-spy" --version >/dev/null 2>&1 || "${PY}" -m pip install -q py-spy==0.4.3; }
mkdir -p bin
go build -o bin/gateway ./gateway/cmd/gateway

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-${pid}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-${pid}" 2>/dev/null || true
  done
  [[ "${BENCH_PG}" == 1 && "${PG_STARTED:-0}" == 1 ]] && bash scripts/postgres.sh stop >/dev/null 2>&1 || true
  rm -rf "${WORK}"
}
trap cleanup EXIT

# start NAME DIR CMD...: a process in a session of its own, log in WORK.
start() {
  local name="$1" dir="$2"
  shift 2
  (cd "${dir}" && exec setsid "$@") </dev/null >"${WORK}/${name}.log" 2>&1 &
  PIDS[${name}]=$!
}

wait_ready() {
  local name="$1" url="$2"
  for _ in $(seq 600); do
    curl -fsS -o /dev/null --max-time 2 "${url}" 2>/dev/null && return 0
    kill -0 "${PIDS[${name}]}" 2>/dev/null || break
    sleep 0.1
  done
  log "${name} did not become ready at ${url}:"
  tail -n 30 "${WORK}/${name}.log" >&2
  exit 1
}

service_env() { # name database_url
  echo "DATABASE_URL=$2" "KAFKA_BROKERS=${BROKERS}" "KAFKA_GROUP_ID=bench-$1-$$" \
    "CART_CHANGES_TOPIC=bench.$$.cart-changes" "ORDER_EVENTS_TOPIC=bench.$$.order-events" "LOG_LEVEL=WARNING"
}

seed() { # base url
  curl -fsS -o /dev/null -X POST "$1/stock" -H 'content-type: application/json' \
    -d '{"product_id":1,"product_name":"green tea","quantity":1000000000,"price_cents":350}'
}

log "starting (workers per server: ${WEB_CONCURRENCY})"
start hello scripts/bench env PORT=$((PORT)) LOG_LEVEL=WARNING "${PY}" -m helloapp
# shellcheck disable=SC2046
start a-sqlite service_a env $(service_env a-sqlite "${WORK}/a.db") PORT=$((PORT + 1)) "${PY}" -m app
if [[ "${BENCH_PG}" == 1 ]]; then
  if ! bash scripts/postgres.sh status >/dev/null 2>&1; then bash scripts/postgres.sh start >&2; PG_STARTED=1; fi
  PG_URL="$(bash scripts/postgres.sh url postgres)"
  PG_DB="bench_$$"
  bash scripts/postgres.sh psql postgres -q -c "DROP DATABASE IF EXISTS ${PG_DB}" -c "CREATE DATABASE ${PG_DB}" >/dev/null
  # shellcheck disable=SC2046
  start a-pg service_a env $(service_env a-pg "${PG_URL%/*}/${PG_DB}") PORT=$((PORT + 2)) "${PY}" -m app
else
  TARGETS="${TARGETS/a-pg/}"
fi
start gateway "${ROOT}" bin/gateway -http-addr "127.0.0.1:$((PORT + 3))" -grpc-addr "127.0.0.1:$((PORT + 4))" \
  -service-a "http://127.0.0.1:$((PORT + 1))" -service-b "http://127.0.0.1:$((PORT + 5))" \
  -kafka-brokers "${BROKERS}" -outbox-dir "${WORK}/outbox" -log-level warn

wait_ready hello "http://127.0.0.1:${PORT}/stock/1"
wait_ready a-sqlite "http://127.0.0.1:$((PORT + 1))/readyz"
seed "http://127.0.0.1:$((PORT + 1))"
if [[ "${BENCH_PG}" == 1 ]]; then
  wait_ready a-pg "http://127.0.0.1:$((PORT + 2))/readyz"
  seed "http://127.0.0.1:$((PORT + 2))"
fi
wait_ready gateway "http://127.0.0.1:$((PORT + 3))/stock/1"

cat >"${WORK}/add.lua" <<'EOF'
-- POST /cart/add of one unit of product 1 for a random user among 100,000.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
request = function()
  return wrk.format(nil, nil, nil, string.format('{"user_id":%d,"product_id":1,"quantity":1}', math.random(1, 100000)))
end
EOF

url_of() {
  case "$1" in
    hello) echo "http://127.0.0.1:${PORT}/stock/1" ;;
    a-sqlite) echo "http://127.0.0.1:$((PORT + 1))/stock/1" ;;
    a-pg) echo "http://127.0.0.1:$((PORT + 2))/stock/1" ;;
    gw-stock) echo "http://127.0.0.1:$((PORT + 3))/stock/1" ;;
    a-add) echo "http://127.0.0.1:$((PORT + 1))/cart/add" ;;
    gw-add) echo "http://127.0.0.1:$((PORT + 3))/cart/add" ;;
  esac
}
server_of() {
  case "$1" in gw-stock | gw-add | a-add) echo a-sqlite ;; *) echo "$1" ;; esac
}

# measure TARGET ROUND: one wrk run; appends "target rps p50 p99 errors" to WORK/results.
measure() {
  local target="$1" round="$2" url script=() out rps p50 p99 errs spy="" spy2=""
  url="$(url_of "${target}")"
  [[ "${target}" == *-add ]] && script=(-s "${WORK}/add.lua")
  if [[ "${target}" == "${PROFILE}" && "${round}" == "${ROUNDS}" ]]; then
    "${ROOT}/.venv/bin/py-spy" record --subprocesses --nonblocking --rate 250 -d "${DURATION%s}" \
      -o "bin/profile-${target}.svg" --pid "${PIDS[$(server_of "${target}")]}" >/dev/null 2>&1 &
    spy=$!
    "${ROOT}/.venv/bin/py-spy" record --subprocesses --nonblocking --rate 250 -d "${DURATION%s}" -f raw \
      -o "bin/profile-${target}.txt" --pid "${PIDS[$(server_of "${target}")]}" >/dev/null 2>&1 &
    spy2=$!
  fi
  out="$(wrk -t2 -c"${CONNS}" -d"${DURATION}" --latency "${script[@]}" "${url}")"
  [[ -n "${spy}" ]] && wait "${spy}" "${spy2}"
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"${out}")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"${out}")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"${out}")"
  errs="$(awk '/Non-2xx/ {print $NF}' <<<"${out}")"
  echo "${target} ${rps} ${p50} ${p99} ${errs:-0}" >>"${WORK}/results"
  log "round ${round} ${target}: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx ${errs:-0}"
}

for round in $(seq "${ROUNDS}"); do  # BENCH_ROUNDS=0: the growth check only
  for target in ${TARGETS}; do measure "${target}" "${round}"; done
done

if [[ -s "${WORK}/results" ]]; then
# Median round per target, ratios: hello is the baseline of everything; the
# gateway rows also against their direct counterpart.
printf '\n%-10s %10s %10s %10s %8s %10s %10s\n' target "req/s" p50 p99 non-2xx "x hello" "x direct"
awk '
  { n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4; err[$1] += $5; order[$1] = order[$1] ? order[$1] : ++seen; names[seen] = names[seen] ? names[seen] : $1 }
  function median(t,   i, j, k, tmp, v) {
    k = n[t]; for (i = 1; i <= k; i++) v[i] = rps[t, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { tmp = v[i]; v[i] = v[j]; v[j] = tmp }
    return v[int((k + 1) / 2)]
  }
  function at(t, m,   i) { for (i = 1; i <= n[t]; i++) if (rps[t, i] == m) return i }
  END {
    base = ("hello" in n) ? median("hello") : 0
    for (s = 1; s <= seen; s++) {
      t = names[s]; m = median(t); i = at(t, m)
      direct = (t == "gw-stock") ? "a-sqlite" : (t == "gw-add") ? "a-add" : ""
      rx = base ? sprintf("%.2fx", m / base) : "-"
      dx = (direct in n) ? sprintf("%.2fx", m / median(direct)) : "-"
      printf "%-10s %10.0f %10s %10s %8d %10s %10s\n", t, m, p50[t, i], p99[t, i], err[t], rx, dx
    }
  }' "${WORK}/results"
fi

if [[ "${BENCH_GROWTH:-1}" == 1 ]]; then
  printf '\n'
  log "growth: 10,000 adds through the gateway"
  "${PY}" scripts/bench/growth.py --url "http://127.0.0.1:$((PORT + 3))" --adds 10000 --concurrency "${CONNS}"
fi
