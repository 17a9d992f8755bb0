#!/usr/bin/env bash
# The body of `make bench-services`: the Python services direct and through
# the gateway (authentication on, events on, outbox sync policy always),
# against the framework's own ceiling, measured with wrk in one run on
# loopback, each service on SQLite and on PostgreSQL.
#
# Targets (each a wrk run with --latency; rounds interleave the targets so
# that the shared machine's noise hits all of them alike; the figure is the
# median round). BACKEND is sqlite or pg (pg only with BENCH_PG=1):
#   hello           a hello-world FastAPI GET /stock/{id} (scripts/bench/helloapp),
#                   served exactly as the services are: the baseline
#   a-get-BACKEND   service A GET /stock/1, direct
#   gw-get-sqlite   the same through the gateway
#   a-add-BACKEND   service A POST /cart/add direct, no Idempotency-Key,
#                   random users among 100,000 (scripts/bench/add.lua)
#   a-keyadd-BACKEND  the same with an Idempotency-Key of its own on every
#                   request (not in the default targets)
#   gw-add-BACKEND  the same POST /cart/add through the gateway: bearer
#                   token, events on (outbox + broker), -outbox-sync always
#                   (and BENCH_GATEWAY_FLAGS, e.g. "-outbox-sync interval", to
#                   take the gateway's path apart)
#   b-pay-BACKEND   service B POST /order/pay direct, no Idempotency-Key
#   gw-pay-BACKEND  the same POST /order/pay through the gateway
# Every request of a pay target pays a cart of its own: before each pay run
# scripts/bench/carts.py fills one-line carts (on A; B gets them from A's
# cart events over Kafka, and the script waits until B has every one) for
# fresh users, enough for the run at the highest pay rate seen so far
# (BENCH_PAY_GUESS before the first), and scripts/bench/pay.lua pays each of
# these users once. A pay run that used up its carts is marked in the table
# (its errors column counts the payments of empty carts).
# Before every run the script waits until the processes it started are idle
# (the events of the previous run consumed).
#
# Authentication is on, set up as `make run` does it: bin/devtoken makes a
# signing key and JWKS in a temporary directory, the gateway gets its
# -auth-* flags, and wrk sends one administrator's token (scope shop:admin,
# which may act for any user_id). The services trust the gateway's and B's
# identity keys (made the same way); direct calls send an identity header for
# that administrator from `make -s service-header` (a fresh one per run: they
# live 10 minutes), as the gateway would for the token.
#
# Then a summary: req/s (pays/s for the pay targets), p50, p99, errors, the
# ratios gw-add / a-add, a-add / hello, gw-pay / b-pay per backend and the
# p50/p99 of the gateway's adds; then the growth check: 10,000 adds
# (BENCH_GROWTH_ADDS) through the gateway (SQLite) to one user's cart and to
# many users, rate of the last tenth against the first
# (scripts/bench/growth.py).
#
# Load guard (scripts/lib/load.sh): the 1-minute load average is printed at
# the start and at the end; above 1.5 at the start the script waits up to
# BENCH_LOAD_WAIT s and then refuses to measure (exit 3). BENCH_IGNORE_LOAD=1
# runs anyway with every output line marked NOT A FIGURE.
#
# Every Python process runs with the same WEB_CONCURRENCY (uvicorn workers).
# Env (defaults in brackets): BENCH_DURATION [5s] BENCH_ROUNDS [3]
# BENCH_CONNECTIONS [32] WEB_CONCURRENCY [2] BENCH_PG [1] BENCH_GROWTH [1]
# BENCH_PORT [18100] (uses BENCH_PORT..+8) BENCH_PAY_GUESS [100] (pays/s)
# BENCH_SETTLE_MAX [30] (s to wait for idle processes) BENCH_LOAD_WAIT [120]
# BENCH_IGNORE_LOAD [0]; KAFKA_BROKERS [none: the broker of scripts/kafka.sh
# on KAFKA_PORT [9092], started when it is not running and stopped again];
# PostgreSQL of scripts/postgres.sh (PG_PORT [5432], same rule);
# BENCH_GATEWAY_FLAGS [] BENCH_TARGETS [all of the above, space-separated] BENCH_PROFILE [] (a
# target name: py-spy records that target's Python server during its last
# round: raw samples in bin/profile-TARGET.txt, summed per function in
# bin/profile-TARGET.split.txt by scripts/bench/spysplit.py)
# BENCH_PROFILE_FLAGS [--nonblocking] (py-spy flags; "--native" to see
# into C, which py-spy cannot do without pausing the process).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=scripts/lib/load.sh
source "${ROOT}/scripts/lib/load.sh"
load_guard bench-services

DURATION="${BENCH_DURATION:-5s}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
BENCH_PG="${BENCH_PG:-1}"
PORT="${BENCH_PORT:-18100}"
PAY_GUESS="${BENCH_PAY_GUESS:-100}"
SETTLE_MAX="${BENCH_SETTLE_MAX:-30}"
PROFILE="${BENCH_PROFILE:-}"
read -ra SPY_FLAGS <<<"${BENCH_PROFILE_FLAGS:---nonblocking}"
read -ra GATEWAY_FLAGS <<<"${BENCH_GATEWAY_FLAGS:-}"
GROWTH_ADDS="${BENCH_GROWTH_ADDS:-10000}"
PY="${ROOT}/.venv/bin/python"
THREADS=2          # wrk -t
PRODUCTS=100       # products 1..100 on each service A
ADMIN_USER=1       # the token's subject
POOL_FIRST=1000001 # pay users start here; the add targets use users 1..100000
WORK="$(mktemp -d)"
BIN="${WORK}/bin"
RUN="bench-$$"
declare -A PIDS=() URL=() POOL_END=() CURSOR=() PAY_RATE=()
KAFKA_STARTED=0
PG_STARTED=0
PG_DBS=()

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

BACKENDS=(sqlite)
[[ "${BENCH_PG}" == 1 ]] && BACKENDS+=(pg)
DEFAULT_TARGETS="hello"
for b in "${BACKENDS[@]}"; do DEFAULT_TARGETS+=" a-get-${b}"; done
DEFAULT_TARGETS+=" gw-get-sqlite"
for b in "${BACKENDS[@]}"; do DEFAULT_TARGETS+=" a-add-${b} gw-add-${b}"; done
for b in "${BACKENDS[@]}"; do DEFAULT_TARGETS+=" b-pay-${b} gw-pay-${b}"; done
TARGETS="${BENCH_TARGETS:-${DEFAULT_TARGETS}}"
if [[ "${BENCH_PG}" != 1 && " ${TARGETS} " == *-pg\ * ]]; then
  die "BENCH_TARGETS names a -pg target but BENCH_PG is not 1"
fi

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-${pid}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  done
  for db in "${PG_DBS[@]}"; do
    bash scripts/postgres.sh psql postgres -q -c "DROP DATABASE IF EXISTS ${db}" >/dev/null 2>&1 || true
  done
  ((PG_STARTED)) && { bash scripts/postgres.sh stop >/dev/null 2>&1 || true; }
  ((KAFKA_STARTED)) && { bash scripts/kafka.sh stop >/dev/null 2>&1 || true; }
  rm -rf "${WORK}"
  load_at_end
}
trap cleanup EXIT
trap 'log "error: line ${LINENO}: ${BASH_COMMAND}: status $?"' ERR

# ---- tools, builds, broker, database -------------------------------------------

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }
make -s venv
[[ -n "${PROFILE}" ]] && { "${ROOT}/.venv/bin/py-spy" --version >/dev/null 2>&1 || "${PY}" -m pip install -q py-spy==0.4.3; }
mkdir -p "${BIN}" bin
go build -o "${BIN}/gateway" ./gateway/cmd/gateway
go build -o "${BIN}/devtoken" ./gateway/cmd/devtoken

if [[ -n "${KAFKA_BROKERS:-}" ]]; then
  BROKERS="${KAFKA_BROKERS}"
else
  export KAFKA_PORT="${KAFKA_PORT:-9092}"
  BROKERS="127.0.0.1:${KAFKA_PORT}"
  if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    log "starting the broker on ${BROKERS} (scripts/kafka.sh; stopped at the end)"
    KAFKA_STARTED=1
    bash scripts/kafka.sh start >&2
  fi
fi
if [[ "${BENCH_PG}" == 1 ]]; then
  if ! bash scripts/postgres.sh status >/dev/null 2>&1; then
    PG_STARTED=1
    bash scripts/postgres.sh start >&2
  fi
  PG_URL="$(bash scripts/postgres.sh url postgres)"
fi

# Authentication as `make run` sets it up: a development key, its JWKS, the
# gateway's flags for them, and a token.
"${BIN}/devtoken" -init -key "${WORK}/dev-key.json" -jwks "${WORK}/jwks.json"
mapfile -t AUTH_FLAGS < <("${BIN}/devtoken" -gateway-flags -key "${WORK}/dev-key.json" -jwks "${WORK}/jwks.json")
TOKEN="$("${BIN}/devtoken" -key "${WORK}/dev-key.json" -sub "${ADMIN_USER}" -scope shop:admin)"
GW_HEADERS=(-H "Authorization: Bearer ${TOKEN}")
# The identity keys behind the gateway, as make run makes them.
"${BIN}/devtoken" -init -alg EdDSA -key "${WORK}/service-signing-key.json" -jwks "${WORK}/service-signing.jwks.json"
"${BIN}/devtoken" -init -alg EdDSA -key "${WORK}/service_b-signing-key.json" -jwks "${WORK}/service_b-signing.jwks.json"
IDENTITY_KEYS="shop-gateway=${WORK}/service-signing.jwks.json,service_b=${WORK}/service_b-signing.jwks.json"

# direct_header SERVICE: the identity header line of the administrator for a
# direct call to SERVICE (service_a or service_b).
direct_header() {
  make -s --no-print-directory service-header RUN_DIR="${WORK}" SVC="$1" SUB="${ADMIN_USER}" SCOPE=shop:admin
}

# ---- processes -------------------------------------------------------------------

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

# service_env BACKEND SERVICE DATABASE_URL: the environment of one service.
service_env() {
  echo "DATABASE_URL=$3" "KAFKA_BROKERS=${BROKERS}" "KAFKA_GROUP_ID=${RUN}-$2-$1" \
    "CART_CHANGES_TOPIC=${RUN}.$1.cart-changes" "ORDER_EVENTS_TOPIC=${RUN}.$1.order-events" "LOG_LEVEL=WARNING" \
    "IDENTITY_KEYS=${IDENTITY_KEYS}" "IDENTITY_SIGNING_KEY=${WORK}/service_b-signing-key.json"
}

# database BACKEND SERVICE: sets DB_URL to a SQLite file in WORK, or to a new
# PostgreSQL database (dropped at the end).
database() {
  if [[ "$1" == sqlite ]]; then
    DB_URL="${WORK}/$2.db"
    return
  fi
  local db="bench_$$_$2"
  bash scripts/postgres.sh psql postgres -q -c "CREATE DATABASE ${db}" >/dev/null
  PG_DBS+=("${db}")
  DB_URL="${PG_URL%/*}/${db}"
}

log "starting (workers per Python server: ${WEB_CONCURRENCY}; backends: ${BACKENDS[*]})"
URL[hello]="http://127.0.0.1:${PORT}"
start hello scripts/bench env PORT="${PORT}" LOG_LEVEL=WARNING "${PY}" -m helloapp
for i in "${!BACKENDS[@]}"; do
  b="${BACKENDS[${i}]}"
  base=$((PORT + 1 + 4 * i)) # A, B, gateway REST, gateway gRPC
  URL[a-${b}]="http://127.0.0.1:${base}"
  URL[b-${b}]="http://127.0.0.1:$((base + 1))"
  URL[gw-${b}]="http://127.0.0.1:$((base + 2))"
  database "${b}" a
  a_db="${DB_URL}"
  database "${b}" b
  b_db="${DB_URL}"
  # shellcheck disable=SC2046
  start "a-${b}" service_a env $(service_env "${b}" a "${a_db}") PORT="${base}" "${PY}" -m app
  # shellcheck disable=SC2046
  start "b-${b}" service_b env $(service_env "${b}" b "${b_db}") PORT="$((base + 1))" \
    SERVICE_A_URL="${URL[a-${b}]}" "${PY}" -m app
  start "gw-${b}" "${ROOT}" "${BIN}/gateway" -http-addr "127.0.0.1:$((base + 2))" -grpc-addr "127.0.0.1:$((base + 3))" -admin-addr= \
    -service-a "${URL[a-${b}]}" -service-b "${URL[b-${b}]}" -kafka-brokers "${BROKERS}" \
    -kafka-topics "shop.cart.v1=${RUN}.${b}.cart,shop.order.v1=${RUN}.${b}.order,shop.stock.v1=${RUN}.${b}.stock" \
    -outbox-dir "${WORK}/outbox-${b}" -outbox-sync always -log-level warn "${AUTH_FLAGS[@]}" \
    -service-signing-key "${WORK}/service-signing-key.json" "${GATEWAY_FLAGS[@]}"
done

wait_ready hello "${URL[hello]}/stock/1"
for b in "${BACKENDS[@]}"; do
  wait_ready "a-${b}" "${URL[a-${b}]}/readyz"
  wait_ready "b-${b}" "${URL[b-${b}]}/readyz"
  a_header="$(direct_header service_a)"
  for p in $(seq "${PRODUCTS}"); do
    curl -fsS -o /dev/null -X POST "${URL[a-${b}]}/stock" -H 'content-type: application/json' -H "${a_header}" \
      -d "{\"product_id\":${p},\"product_name\":\"product ${p}\",\"quantity\":1000000000,\"price_cents\":350}"
  done
  wait_ready "gw-${b}" "${URL[gw-${b}]}/readyz"
  POOL_END[${b}]=$((POOL_FIRST - 1))
  CURSOR[${b}]=${POOL_FIRST}
done
curl -fsS -o /dev/null "${GW_HEADERS[@]}" -X POST "${URL[gw-sqlite]}/cart/add" -H 'content-type: application/json' \
  -d '{"user_id":100001,"product_id":1,"quantity":1}' || die "an add through the gateway with the token failed"

# ---- one measurement -----------------------------------------------------------------

backend_of() { echo "${1##*-}"; }
# server_of TARGET: the Python process that does the target's work (for py-spy).
server_of() {
  case "$1" in
    hello) echo hello ;;
    *-pay-*) echo "b-$(backend_of "$1")" ;;
    *) echo "a-$(backend_of "$1")" ;;
  esac
}
direct_of() {
  case "$1" in
    gw-get-*) echo "a-get-${1#gw-get-}" ;;
    gw-add-*) echo "a-add-${1#gw-add-}" ;;
    gw-pay-*) echo "b-pay-${1#gw-pay-}" ;;
  esac
}

seconds_of() { # a wrk duration (5, 5s, 2m, 1h) in seconds
  local d="$1"
  case "${d}" in
    *h) echo $((${d%h} * 3600)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "${d}" ;;
  esac
}
DURATION_S="$(seconds_of "${DURATION}")"

# cpu_ticks: CPU time (clock ticks) used so far by the processes started here.
cpu_ticks() {
  local groups=" ${PIDS[*]} "
  # A process may end between the glob and the read: cat fails then, never mind.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="${groups}" '
    { sub(/^.*\) /, ""); if (index(g, " " $3 " ")) t += $12 + $13 } END { print t + 0 }'
}

# alive: fail, with the log of the process, when one of those processes exited.
alive() {
  local name
  for name in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[${name}]}" 2>/dev/null; then
      log "${name} exited; the end of its log:"
      tail -n 40 "${WORK}/${name}.log" >&2
      exit 1
    fi
  done
}

# cpu_split: "name=ticks ..." for each process group started here, for the
# broker (when its pid is known) and for everything else on the machine
# (other, wrk included): the split of a run's CPU.
cpu_split() {
  local groups="" name kpid=""
  for name in "${!PIDS[@]}"; do groups+=" ${PIDS[${name}]}=${name}"; done
  [[ -f "${ROOT}/.kafka/kafka.pid" ]] && kpid="$(cat "${ROOT}/.kafka/kafka.pid")"
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="${groups}" -v k="${kpid}" '
    BEGIN { n = split(g, gl, " "); for (i = 1; i <= n; i++) { split(gl[i], kv, "="); name[kv[1]] = kv[2] } }
    {
      pid = $1; sub(/^.*\) /, ""); t = $12 + $13
      if ($3 in name) cpu[name[$3]] += t; else if (pid == k) cpu["kafka"] += t; else cpu["other"] += t
    }
    END { for (p in cpu) printf "%s=%d ", p, cpu[p]; print "" }'
}

# cpu_per_request BEFORE AFTER REQUESTS: milliseconds of CPU per request of
# each process between two cpu_split outputs.
cpu_per_request() {
  awk -v a="$1" -v b="$2" -v r="$3" -v hz="${HZ}" 'BEGIN {
    n = split(a, al, " "); for (i = 1; i <= n; i++) { split(al[i], kv, "="); before[kv[1]] = kv[2] }
    n = split(b, bl, " "); for (i = 1; i <= n; i++) { split(bl[i], kv, "="); d = kv[2] - before[kv[1]]
      if (d > 0 && r > 0) { out = out sprintf("%s %.2f ", kv[1], d * 1000 / hz / r); total += d } }
    printf "%stotal %.2f\n", out, total * 1000 / hz / r }'
}

# cpu_rate: ticks used by those processes over the next second.
cpu_rate() {
  local before after
  before="$(cpu_ticks)"
  sleep 1
  after="$(cpu_ticks)"
  echo $((after - before))
}

# settle: wait (at most SETTLE_MAX s) until those processes are back to the
# CPU they use when idle (IDLE_TICKS, measured once before the first run,
# plus a twentieth of a core), so that no run pays for the last one's
# events still being consumed.
settle() {
  local i rate
  for ((i = 0; i < SETTLE_MAX; i++)); do
    rate="$(cpu_rate)"
    ((rate <= IDLE_TICKS + HZ / 20)) && return 0
  done
  log "the services still used ${rate} ticks/s after ${SETTLE_MAX} s, ${IDLE_TICKS} when idle (BENCH_SETTLE_MAX); measuring anyway"
}

# pay_carts BACKEND: make sure enough filled carts wait for the next pay run.
pay_carts() {
  local b="$1" rate need have
  rate="${PAY_RATE[${b}]:-${PAY_GUESS}}"
  need=$(awk -v r="${rate}" -v d="${DURATION_S}" -v c="${CONNS}" 'BEGIN { printf "%d", r * d * 1.5 + 4 * c }')
  have=$((POOL_END[${b}] - CURSOR[${b}] + 1))
  ((have >= need)) && return 0
  "${PY}" scripts/bench/carts.py --a "${URL[a-${b}]}" --b "${URL[b-${b}]}" --first "$((POOL_END[${b}] + 1))" \
    --count "$((need - have))" --products "${PRODUCTS}" --concurrency "${CONNS}" \
    --a-header "$(direct_header service_a)" --b-header "$(direct_header service_b)"
  POOL_END[${b}]=$((POOL_END[${b}] + need - have))
}

# measure TARGET ROUND: one wrk run; appends "target rps p50 p99 errors note"
# to WORK/results.
measure() {
  local target="$1" round="$2" b url server script=() headers=() keys=0 out rps p50 p99 errs note="-" spy=""
  b="$(backend_of "${target}")"
  case "${target}" in
    hello) url="${URL[hello]}/stock/1" ;;
    a-get-*) url="${URL[a-${b}]}/stock/1" headers=(-H "$(direct_header service_a)") ;;
    gw-get-*) url="${URL[gw-${b}]}/stock/1" headers=("${GW_HEADERS[@]}") ;;
    a-add-*) url="${URL[a-${b}]}/cart/add" headers=(-H "$(direct_header service_a)") script=(-s scripts/bench/add.lua) ;;
    a-keyadd-*) url="${URL[a-${b}]}/cart/add" headers=(-H "$(direct_header service_a)") script=(-s scripts/bench/add.lua) keys=1 ;;
    gw-add-*) url="${URL[gw-${b}]}/cart/add" headers=("${GW_HEADERS[@]}") script=(-s scripts/bench/add.lua) ;;
    b-pay-*) url="${URL[b-${b}]}/order/pay" headers=(-H "$(direct_header service_b)") script=(-s scripts/bench/pay.lua) ;;
    gw-pay-*) url="${URL[gw-${b}]}/order/pay" headers=("${GW_HEADERS[@]}") script=(-s scripts/bench/pay.lua) ;;
    *) die "unknown target ${target}" ;;
  esac
  if [[ "${target}" == *-pay-* ]]; then
    pay_carts "${b}"
    export PAY_FIRST="${CURSOR[${b}]}" PAY_THREADS="${THREADS}" PAY_STATE="${WORK}/pay-state"
  fi
  settle
  if [[ "${target}" == "${PROFILE}" && "${round}" == "${ROUNDS}" ]]; then
    server="${PIDS[$(server_of "${target}")]}"
    # One py-spy (two would pause the process in turn): raw samples, which
    # scripts/bench/spysplit.py sums per function after the run.
    "${ROOT}/.venv/bin/py-spy" record --subprocesses --rate 250 -d "${DURATION_S}" "${SPY_FLAGS[@]}" -f raw \
      -o "bin/profile-${target}.txt" --pid "${server}" >/dev/null 2>&1 &
    spy=$!
  fi
  alive
  local cpu_before cpu_after requests split
  cpu_before="$(cpu_split)"
  if ! out="$(ADD_KEYS="${keys}" wrk -t"${THREADS}" -c"${CONNS}" -d"${DURATION}" --timeout 10s --latency "${headers[@]}" "${script[@]}" "${url}" 2>&1)"; then
    alive
    die "wrk failed on ${target}: ${out}"
  fi
  if [[ -n "${spy}" ]]; then
    wait "${spy}" || die "py-spy failed on ${target}"
    "${PY}" scripts/bench/spysplit.py "bin/profile-${target}.txt" >"bin/profile-${target}.split.txt"
    log "profile of ${target}: bin/profile-${target}.txt, summed in bin/profile-${target}.split.txt"
  fi
  # The run's work includes the events it made, consumed after wrk ended.
  settle
  cpu_after="$(cpu_split)"
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"${out}")"
  requests="$(awk '/requests in/ {print $1}' <<<"${out}")"
  split="$(cpu_per_request "${cpu_before}" "${cpu_after}" "${requests}")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"${out}")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"${out}")"
  # Non-2xx answers and socket errors (connect, read, write, timeout).
  errs="$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"${out}")"
  if [[ "${target}" == *-pay-* ]]; then
    local top
    top="$(cat "${WORK}/pay-state")"
    CURSOR[${b}]=$((top + 1))
    if ((top > POOL_END[${b}])); then
      note="out-of-carts"
      log "${target} paid past the filled carts (user ${top} > ${POOL_END[${b}]}): its errors include empty carts; a larger BENCH_PAY_GUESS avoids it"
    fi
    PAY_RATE[${b}]="$(awk -v a="${PAY_RATE[${b}]:-0}" -v r="${rps}" 'BEGIN { print (r > a) ? r : a }')"
  fi
  echo "${target} ${rps} ${p50} ${p99} ${errs} ${note}" >>"${WORK}/results"
  log "round ${round} ${target}: ${rps} req/s, p50 ${p50}, p99 ${p99}, errors ${errs}"
  log "round ${round} ${target}: CPU ms per request: ${split}"
}

# The idle CPU of the processes started here (background loops, health
# probes): the least of five seconds.
HZ="$(getconf CLK_TCK)"
IDLE_TICKS=""
for _ in 1 2 3 4 5; do
  rate="$(cpu_rate)"
  if [[ -z "${IDLE_TICKS}" ]] || ((rate < IDLE_TICKS)); then IDLE_TICKS="${rate}"; fi
done
log "idle: the started processes use ${IDLE_TICKS} ticks/s (${HZ} ticks/s is one core)"

for round in $(seq "${ROUNDS}"); do # BENCH_ROUNDS=0: the growth check only
  for target in ${TARGETS}; do measure "${target}" "${round}"; done
done

# ---- summary -------------------------------------------------------------------------

if [[ -s "${WORK}/results" ]]; then
  pairs=""
  for target in ${TARGETS}; do
    d="$(direct_of "${target}")"
    [[ -n "${d}" ]] && pairs+="${target}=${d} "
  done
  # Median round per target (the lower middle one for an even count); its
  # p50 and p99. hello is the baseline of everything; the gateway rows are
  # also against their direct counterpart.
  printf '\nmedian of %s rounds, %s each, %s connections, %s threads:\n' "${ROUNDS}" "${DURATION}" "${CONNS}" "${THREADS}"
  awk -v pairs="${pairs}" -v conns="${CONNS}" '
    {
      if (!($1 in n)) names[++seen] = $1
      n[$1]++; rps[$1, n[$1]] = $2; p50[$1, n[$1]] = $3; p99[$1, n[$1]] = $4; err[$1] += $5
      if ($6 != "-") note[$1] = $6
    }
    function median(t,   i, j, k, tmp, v) {
      k = n[t]; for (i = 1; i <= k; i++) v[i] = rps[t, i]
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] + 0 < v[i] + 0) { tmp = v[i]; v[i] = v[j]; v[j] = tmp }
      return v[int((k + 1) / 2)]
    }
    function at(t, m,   i) { for (i = 1; i <= n[t]; i++) if (rps[t, i] == m) return i }
    function ratio(a, b) { return ((a in n) && (b in n) && median(b) > 0) ? sprintf("%.2fx", median(a) / median(b)) : "-" }
    END {
      np = split(pairs, pl, " ")
      for (i = 1; i <= np; i++) { split(pl[i], kv, "="); direct[kv[1]] = kv[2] }
      printf "%-14s %10s %10s %10s %8s %8s %9s  %s\n", "target", "req/s", "p50", "p99", "errors", "x hello", "x direct", "note"
      for (s = 1; s <= seen; s++) {
        t = names[s]; m = median(t); i = at(t, m)
        printf "%-14s %10.0f %10s %10s %8d %8s %9s  %s\n", t, m, p50[t, i], p99[t, i], err[t], ratio(t, "hello"),
          (t in direct) ? ratio(t, direct[t]) : "-", (t in note) ? note[t] : ""
      }
      printf "\nratios (median rounds):\n"
      for (s = 1; s <= 2; s++) {
        b = (s == 1) ? "sqlite" : "pg"
        if (!(("a-add-" b) in n) && !(("b-pay-" b) in n)) continue
        printf "  %-6s gw-add / a-add-direct %s   a-add-direct / hello %s   gw-pay / b-pay-direct %s\n", b,
          ratio("gw-add-" b, "a-add-" b), ratio("a-add-" b, "hello"), ratio("gw-pay-" b, "b-pay-" b)
        if (("b-pay-" b) in n || ("gw-pay-" b) in n)
          printf "  %-6s pays/s: b-pay-direct %s   gw-pay %s\n", b,
            (("b-pay-" b) in n) ? sprintf("%.0f", median("b-pay-" b)) : "-",
            (("gw-pay-" b) in n) ? sprintf("%.0f", median("gw-pay-" b)) : "-"
        t = "gw-add-" b
        if (t in n) { i = at(t, median(t)); printf "  %-6s gw-add at %d connections: p50 %s   p99 %s\n", b, conns, p50[t, i], p99[t, i] }
      }
    }' "${WORK}/results"
fi

if [[ "${BENCH_GROWTH:-1}" == 1 ]]; then
  printf '\n'
  log "growth: ${GROWTH_ADDS} adds through the gateway (SQLite)"
  "${PY}" scripts/bench/growth.py --url "${URL[gw-sqlite]}" --adds "${GROWTH_ADDS}" --concurrency "${CONNS}" --token "${TOKEN}"
fi
