#!/usr/bin/env bash
# Runs the whole shop on this machine as local processes (the body of
# `make run`): a Kafka broker (scripts/kafka.sh), service_a, service_b and
# the gateway, each with its log lines prefixed [kafka], [service_a],
# [service_b], [gateway]. Ctrl-C (or SIGTERM) stops all of them.
#
# On a fresh machine (Go, Python 3, Java 17+ and Maven present) it first
# creates the venv, builds the gateway and fetches the Kafka jars, in
# parallel. Data lives under .run/ (SQLite files, the gateway's outbox, raw
# logs); the broker's data and jars under .kafka/.
#
# Auth: on the first start it creates a development signing key under
# RUN_DIR (bin/devtoken -init; kept across runs, ignored by git), gives the
# gateway its JWKS, issuer and audience, and prints ready tokens for the demo
# user (DEMO_USER) and an administrator. `make -s token SUB=7` prints more.
# It also creates the identity keys the services trust (EdDSA, in RUN_DIR):
# the gateway's (service-signing-key.json; its public half
# service-signing.jwks.json) and service B's own for its calls to A
# (service_b-signing-key.json). `make -s service-header SVC=service_a`
# prints a header that lets a person call a service directly.
#
# On the first start (an empty stock list, or no .run/.seeded marker) it
# seeds five products (ids 1 to 5) through the gateway's REST API, so that
# the curl examples return data; SEED=0 turns that off.
#
# Environment (defaults in brackets):
#   HTTP_PORT [8080]  GRPC_PORT [9090]  ADMIN_PORT [9464]  SERVICE_A_PORT [8002]  SERVICE_B_PORT [8001]
#   KAFKA_PORT [9092] KAFKA_CONTROLLER_PORT [9093]   (read by scripts/kafka.sh too)
#   RUN_DIR [.run]    data and logs
#   SEED [1]          0: do not seed products into an empty stock
#   READY_TIMEOUT [90] seconds to wait for each process to become ready
#   KEEP_KAFKA [0]    1: leave the broker running on exit
#   DEMO_USER [7]     user id of the demo token printed at start
#   SERVICE_A_DATABASE_URL, SERVICE_B_DATABASE_URL  e.g. postgresql://... [SQLite files in RUN_DIR]
#   GATEWAY_RATE_LIMIT, GATEWAY_RATE_BURST  the gateway's per-client rate limit [off]; the banner says which
# The broker is stopped on exit only when this script started it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
cd "${ROOT}"

readonly HOST=127.0.0.1
HTTP_PORT="${HTTP_PORT:-8080}"
GRPC_PORT="${GRPC_PORT:-9090}"
ADMIN_PORT="${ADMIN_PORT:-9464}"
SERVICE_A_PORT="${SERVICE_A_PORT:-8002}"
SERVICE_B_PORT="${SERVICE_B_PORT:-8001}"
export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
RUN_DIR="${RUN_DIR:-${ROOT}/.run}"
SEED="${SEED:-1}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"
KEEP_KAFKA="${KEEP_KAFKA:-0}"
readonly KAFKA_LOG="${KAFKA_HOME_DIR:-${ROOT}/.kafka}/broker.log"
readonly BROKER="${HOST}:${KAFKA_PORT}"
readonly PY="${ROOT}/.venv/bin/python"
readonly GATEWAY_BIN="${ROOT}/bin/gateway"
readonly DEVTOKEN="${ROOT}/bin/devtoken"
readonly DEV_KEY="${RUN_DIR}/dev-key.json"
readonly DEV_JWKS="${RUN_DIR}/jwks.json"
readonly SVC_KEY="${RUN_DIR}/service-signing-key.json"
readonly SVC_JWKS="${RUN_DIR}/service-signing.jwks.json"
readonly B_KEY="${RUN_DIR}/service_b-signing-key.json"
readonly B_JWKS="${RUN_DIR}/service_b-signing.jwks.json"
DEMO_USER="${DEMO_USER:-7}"
readonly REST="http://${HOST}:${HTTP_PORT}"

STARTED=${SECONDS}
log() { printf '[run] %s\n' "$*"; }
die() {
  printf '[run] error: %s\n' "$*" >&2
  exit 1
}

# prefixed NAME copies stdin to RUN_DIR/logs/NAME.log and to stdout with a
# "[NAME] " prefix, leaving out the services' access lines of the gateway's
# health probes (every 2 s; they stay in the log file). It ignores SIGINT and
# SIGTERM: Ctrl-C, or a SIGTERM sent to the whole process group, reaches it
# too, and the processes' shutdown lines must still get through.
prefixed() {
  trap '' INT TERM
  tee -a "${RUN_DIR}/logs/$1.log" | grep --line-buffered -v -E '"GET /(healthz|readyz) HTTP/1\.1" 200' |
    sed -u "s/^/[$1] /"
}

declare -A PIDS=()  # name -> pid, which is also the pgid (setsid)
KAFKA_STARTED=0
KAFKA_TAIL=""
STOPPING=0

# start NAME DIR CMD... runs CMD in DIR in a session of its own (so that the
# terminal's Ctrl-C does not reach it: this script stops it, in order) with
# its output prefixed.
start() {
  local name="$1" dir="$2"
  shift 2
  (cd "${dir}" && exec setsid "$@") </dev/null > >(prefixed "${name}") 2>&1 &
  PIDS[${name}]=$!
}

alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "${state}" && "${state}" != "Z" ]]
}

# stop NAME GRACE: SIGTERM to the process group, SIGKILL after GRACE s.
stop() {
  local name="$1" grace="$2" pid start
  pid="${PIDS[${name}]:-}"
  [[ -n "${pid}" ]] || return 0
  unset "PIDS[${name}]"
  if alive "${pid}"; then
    log "stopping ${name} (pid ${pid})"
    kill -TERM -- "-${pid}" 2>/dev/null || true
    start=${SECONDS}
    while alive "${pid}" && ((SECONDS - start < grace)); do sleep 0.1; done
    if alive "${pid}"; then
      log "${name} ignored SIGTERM for ${grace} s; killing it"
    fi
  fi
  kill -KILL -- "-${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  ((STOPPING)) && return
  STOPPING=1
  trap '' INT TERM
  stop gateway 20
  stop service_b 15
  stop service_a 15
  if ((KAFKA_STARTED)) && [[ "${KEEP_KAFKA}" != 1 ]]; then
    log "stopping Kafka"
    bash scripts/kafka.sh stop 2>&1 | sed -u 's/^/[kafka] /' || true
  elif ((KAFKA_STARTED)); then
    log "leaving Kafka running on ${BROKER} (KEEP_KAFKA=1; scripts/kafka.sh stop stops it)"
  fi
  if [[ -n "${KAFKA_TAIL}" ]]; then
    kill "${KAFKA_TAIL}" 2>/dev/null || true
  fi
  wait 2>/dev/null || true # the log pipes end when their writers have exited
  log "stopped"
  exit "${rc}"
}

# on_signal: a stop that was asked for (Ctrl-C, SIGTERM) and then completes
# cleanly is a success, so make does not report it as an error.
on_signal() {
  printf '\n'
  log "$1: stopping everything"
  exit 0
}

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# wait_ready NAME URL: poll URL until 200, the process exits, or time runs out.
wait_ready() {
  local name="$1" url="$2" pid="${PIDS[$1]}" start=${SECONDS}
  until curl -fsS -o /dev/null --max-time 2 "${url}" 2>/dev/null; do
    alive "${pid}" || die "${name} exited during start-up; its log is ${RUN_DIR}/logs/${name}.log"
    ((SECONDS - start < READY_TIMEOUT)) ||
      die "${name} not ready at ${url} after ${READY_TIMEOUT} s; its log is ${RUN_DIR}/logs/${name}.log"
    sleep 0.2
  done
  log "${name} ready ($((SECONDS - start)) s)"
}

# ---- prerequisites ------------------------------------------------------------

for tool in go python3 java mvn curl setsid ss; do
  command -v "${tool}" >/dev/null 2>&1 || die "${tool} not found; make run needs Go, Python 3, Java 17+, Maven, curl, setsid and ss"
done
for port in "${HTTP_PORT}" "${GRPC_PORT}" "${ADMIN_PORT}" "${SERVICE_A_PORT}" "${SERVICE_B_PORT}"; do
  if port_taken "${port}"; then
    die "port ${port} is in use: $(ss -Hltnp "sport = :${port}" | head -1)"
  fi
done
mkdir -p "${RUN_DIR}/logs"

trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# ---- setup: venv, gateway binary, Kafka, in parallel ------------------------------

setup_venv() {
  make --no-print-directory venv
}

if bash scripts/kafka.sh status >/dev/null 2>&1; then
  log "Kafka already running on ${BROKER}; it is left running on exit"
else
  KAFKA_STARTED=1
fi
log "preparing: venv, gateway build, Kafka (first run: downloads; later: seconds)"
(setup_venv) > >(prefixed venv) 2>&1 &
venv_pid=$!
# A first build downloads and compiles the Go modules for minutes: say so
# every 30 s, as the venv step does, rather than staying silent.
(
  (while sleep 30; do echo "still building (a first build downloads and compiles the Go modules: minutes)"; done) &
  ticker=$!
  trap 'kill "${ticker}" 2>/dev/null' EXIT
  go build -o "${GATEWAY_BIN}" ./gateway/cmd/gateway && go build -o "${DEVTOKEN}" ./gateway/cmd/devtoken &&
    echo "built ${GATEWAY_BIN} and ${DEVTOKEN}"
) > >(prefixed build) 2>&1 &
build_pid=$!
kafka_pid=""
if ((KAFKA_STARTED)); then
  # setsid: the broker must not get the terminal's Ctrl-C before the services
  # that publish to it have stopped.
  (exec setsid bash scripts/kafka.sh start) </dev/null > >(prefixed kafka) 2>&1 &
  kafka_pid=$!
fi
wait "${venv_pid}" || die "setting up the venv failed (see [venv] above)"
wait "${build_pid}" || die "building the gateway failed (see [build] above)"
if [[ -n "${kafka_pid}" ]]; then
  wait "${kafka_pid}" || die "Kafka did not start (see [kafka] above; full log ${KAFKA_LOG})"
fi
log "prepared in $((SECONDS - STARTED)) s"

# The development signing key: made once, kept in RUN_DIR; its JWKS is what
# the gateway verifies tokens with.
[[ -f "${DEV_KEY}" ]] || log "creating a development signing key in ${DEV_KEY}"
"${DEVTOKEN}" -init -key "${DEV_KEY}" -jwks "${DEV_JWKS}" || die "creating the development signing key failed"
mapfile -t AUTH_FLAGS < <("${DEVTOKEN}" -gateway-flags -key "${DEV_KEY}" -jwks "${DEV_JWKS}")
# The identity keys behind the gateway: the services trust the gateway's
# public key for users and itself, and service B's for B alone.
"${DEVTOKEN}" -init -alg EdDSA -key "${SVC_KEY}" -jwks "${SVC_JWKS}" || die "creating the gateway's service signing key failed"
"${DEVTOKEN}" -init -alg EdDSA -key "${B_KEY}" -jwks "${B_JWKS}" || die "creating service B's signing key failed"
readonly IDENTITY_KEYS="shop-gateway=${SVC_JWKS},service_b=${B_JWKS}"
token() { "${DEVTOKEN}" -key "${DEV_KEY}" -sub "$1" ${2:+-scope "$2"}; }
ADMIN_TOKEN="$(token 1 shop:admin)"
DEMO_TOKEN="$(token "${DEMO_USER}")"

# Broker warnings and errors only; the full log is in KAFKA_LOG.
# $! is tail itself: killing it ends grep and the prefixer too.
tail -n0 -F "${KAFKA_LOG}" 2>/dev/null > >(grep --line-buffered -E '\] (WARN|ERROR) ' | prefixed kafka) &
KAFKA_TAIL=$!

# ---- the services and the gateway ---------------------------------------------------

start service_a "${ROOT}/service_a" env HOST="${HOST}" PORT="${SERVICE_A_PORT}" \
  DATABASE_URL="${SERVICE_A_DATABASE_URL:-${RUN_DIR}/service_a.db}" KAFKA_BROKERS="${BROKER}" \
  IDENTITY_KEYS="${IDENTITY_KEYS}" PYTHONUNBUFFERED=1 "${PY}" -m app
start service_b "${ROOT}/service_b" env HOST="${HOST}" PORT="${SERVICE_B_PORT}" \
  DATABASE_URL="${SERVICE_B_DATABASE_URL:-${RUN_DIR}/service_b.db}" KAFKA_BROKERS="${BROKER}" \
  SERVICE_A_URL="http://${HOST}:${SERVICE_A_PORT}" IDENTITY_KEYS="${IDENTITY_KEYS}" IDENTITY_SIGNING_KEY="${B_KEY}" \
  PYTHONUNBUFFERED=1 "${PY}" -m app
wait_ready service_a "http://${HOST}:${SERVICE_A_PORT}/readyz"
wait_ready service_b "http://${HOST}:${SERVICE_B_PORT}/readyz"

start gateway "${ROOT}" "${GATEWAY_BIN}" \
  -http-addr "${HOST}:${HTTP_PORT}" -grpc-addr "${HOST}:${GRPC_PORT}" -admin-addr "${HOST}:${ADMIN_PORT}" \
  -service-a "http://${HOST}:${SERVICE_A_PORT}" -service-b "http://${HOST}:${SERVICE_B_PORT}" \
  -kafka-brokers "${BROKER}" -outbox-dir "${RUN_DIR}/outbox" -log-format text "${AUTH_FLAGS[@]}" \
  -service-signing-key "${SVC_KEY}"
wait_ready gateway "${REST}/readyz"

# ---- seed ---------------------------------------------------------------------

# Seeds when the stock is empty, or when an earlier seed was cut short
# (no marker file); products that already exist are left as they are.
readonly SEED_MARKER="${RUN_DIR}/.seeded"
if [[ "${SEED}" != 0 ]]; then
  count="$(curl -fsS --max-time 5 "${REST}/stock?page_size=1" -H "Authorization: Bearer ${ADMIN_TOKEN}" |
    "${PY}" -c 'import json, sys; print(len(json.load(sys.stdin).get("items", [])))')"
  if [[ "${count}" == 0 || ! -f "${SEED_MARKER}" ]]; then
    log "first start: seeding 5 products (SEED=0 turns this off)"
    while IFS='|' read -r id name qty price; do
      code="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST "${REST}/stock" \
        -H 'Content-Type: application/json' -H "Authorization: Bearer ${ADMIN_TOKEN}" \
        -d "{\"product_id\":${id},\"product_name\":\"${name}\",\"quantity\":${qty},\"price_cents\":${price}}")"
      [[ "${code}" == 200 || "${code}" == 409 ]] || die "seeding product ${id}: HTTP ${code}"
    done <<'EOF'
1|Espresso beans 1 kg|100|1890
2|Pour-over kettle|25|4500
3|Ceramic mug|200|1200
4|Paper filters (100)|500|450
5|Hand grinder|15|6900
EOF
    touch "${SEED_MARKER}"
  fi
fi

# The gateway reads GATEWAY_RATE_LIMIT and GATEWAY_RATE_BURST from this
# environment; say what they make of it.
RATE_LINE="off (GATEWAY_RATE_LIMIT=50 GATEWAY_RATE_BURST=100 make run turns it on)"
if [[ -n "${GATEWAY_RATE_LIMIT:-}" && "${GATEWAY_RATE_LIMIT}" != 0 ]]; then
  RATE_LINE="on: ${GATEWAY_RATE_LIMIT} requests/s per client, bursts of ${GATEWAY_RATE_BURST:-the rate}; over it 429"
fi

cat <<EOF
[run] ------------------------------------------------------------------------
[run] ready in $((SECONDS - STARTED)) s. Listening on:
[run]   gateway REST  ${REST}         (the API, /healthz, one-word /readyz)
[run]   gateway admin http://${HOST}:${ADMIN_PORT}         (/metrics, /readyz with every dependency; loopback only)
[run]   gateway gRPC  ${HOST}:${GRPC_PORT}          (reflection and grpc.health.v1 on)
[run]   service_a     http://${HOST}:${SERVICE_A_PORT}    service_b  http://${HOST}:${SERVICE_B_PORT}
[run]                 (they answer 401 without a signed identity; make -s service-header SVC=service_a prints one)
[run]   Kafka         ${BROKER}          data in ${RUN_DIR}, raw logs in ${RUN_DIR}/logs
[run] Rate limiting: ${RATE_LINE}
[run] Tokens (valid 24 h; make -s token SUB=7 [SCOPE=shop:admin] prints a new one):
[run]   export TOKEN=${DEMO_TOKEN}
[run]   export ADMIN_TOKEN=${ADMIN_TOKEN}
[run] Try (TOKEN is user ${DEMO_USER}; ADMIN_TOKEN has scope shop:admin):
[run]   curl -s '${REST}/stock?page_size=2'
[run]   curl -s -X POST ${REST}/cart/add -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"product_id":1,"quantity":2}'
[run]   curl -s ${REST}/cart -H "Authorization: Bearer \$TOKEN"
[run]   .tools/bin/grpcurl -plaintext -H "authorization: Bearer \$TOKEN" ${HOST}:${GRPC_PORT} shop.cart.v1.CartService/GetCart   (make grpcurl builds it)
[run]   KAFKA_PORT=${KAFKA_PORT} scripts/kafka.sh consume shop.cart.v1      (the gateway's events, from this stack's broker)
[run] Ctrl-C stops everything.
[run] ------------------------------------------------------------------------
EOF

# ---- run until a signal or until a process dies --------------------------------

while true; do
  exited=""
  wait -n -p exited "${PIDS[@]}" && rc=0 || rc=$?
  for name in "${!PIDS[@]}"; do
    if [[ "${PIDS[${name}]}" == "${exited}" ]]; then
      log "${name} exited unexpectedly (status ${rc}); stopping everything"
      unset "PIDS[${name}]"
      exit 1
    fi
  done
done
