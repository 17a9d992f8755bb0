#!/usr/bin/env bash
# `make compose-test`: starts docker-compose.yml for real and drives a
# purchase through it. On a machine without Docker it uses podman's Docker
# API with Debian's docker-compose (1.29), the stand-in base images of
# deploy/ci-images/ (built from package registries, cached between runs) and
# the project's own Dockerfiles, unchanged:
#
#   1. installs podman, docker-compose and friends with apt-get when missing;
#   2. starts a podman API socket of its own (settings from
#      deploy/ci-images/containers.conf via CONTAINERS_CONF; the host's
#      configuration is not touched);
#   3. builds the stand-ins, then the gateway and service images;
#   4. `up` with a project name of its own on free host ports, running the
#      healthchecks itself (podman runs them by systemd timers, absent here);
#   5. the journey through the gateway: tokens from the keys job, create and
#      list stock, add to a cart, read it, pay, and the CartItemAdded and
#      OrderPaid CloudEvents read back from the compose broker;
#   6. always: `down -v`, the healthcheck loop and the socket stopped.
#
# A failing step names the service and prints its last log lines. Needs root.
# Environment: COMPOSE_TEST_PROJECT (shop-ci), COMPOSE_TEST_TIMEOUT (seconds
# to wait for healthy, 300), SHOP_HTTP_PORT, SHOP_GRPC_PORT, SHOP_KAFKA_PORT,
# SHOP_POSTGRES_PORT (defaults 28080, 29090, 29092, 25432; a taken port is
# replaced by a free one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly PROJECT="${COMPOSE_TEST_PROJECT:-shop-ci}"
readonly HEALTH_TIMEOUT="${COMPOSE_TEST_TIMEOUT:-300}"
readonly RUN_DIR="/run/shop-compose-test-${PROJECT}"
readonly PACKAGES=(podman docker-compose runc debootstrap uidmap slirp4netns fuse-overlayfs unzip xz-utils curl)

export CONTAINERS_CONF="${ROOT}/deploy/ci-images/containers.conf"
export DOCKER_HOST="unix://${RUN_DIR}/podman.sock"
export COMPOSE_PROJECT_NAME="${PROJECT}"
export COMPOSE_FILE="${ROOT}/docker-compose.yml"
# docker-compose 1.29 builds nothing here (the images are built by podman) and
# must not ask an absent registry for them.
export COMPOSE_DOCKER_CLI_BUILD=0

T0=${SECONDS}
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
say() { printf '    %s\n' "$*" >&2; }

SOCKET_PID=""
HEALTH_PID=""
STARTED=0

compose() { docker-compose --ansi never "$@"; }

# logs SERVICE: its last log lines and state, for a failure message.
logs() {
  printf '\n---- %s: last 50 log lines ----\n' "$1" >&2
  compose logs --no-color --tail 50 "$1" >&2 2>&1 || true
  compose ps "$1" >&2 2>&1 || true
}

# fail "SERVICE..." MESSAGE: names the service(s), shows their logs, exits
# non-zero.
fail() {
  local svc
  printf '\ncompose-test: FAILED at service %s: %s\n' "$1" "$2" >&2
  for svc in $1; do logs "${svc}"; done
  printf '\ncompose-test: FAILED at service %s: %s\n' "$1" "$2" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [[ ${STARTED} == 1 ]]; then
    step "down -v (project ${PROJECT})"
    timeout 180 docker-compose --ansi never down -v --remove-orphans --timeout 20 >&2 2>&1
    left="$(podman ps -a -q --filter "label=com.docker.compose.project=${PROJECT}")"
    if [[ -n "${left}" ]]; then
      say "removing containers left behind: ${left//$'\n'/ }"
      # shellcheck disable=SC2086 # one argument per container
      podman rm -f -t 5 ${left} >/dev/null 2>&1
      rc=1
    fi
  fi
  if [[ -n "${HEALTH_PID}" ]]; then kill "${HEALTH_PID}" 2>/dev/null; wait "${HEALTH_PID}" 2>/dev/null; fi
  if [[ -n "${SOCKET_PID}" ]]; then
    kill "${SOCKET_PID}" 2>/dev/null
    wait "${SOCKET_PID}" 2>/dev/null
    rm -rf "${RUN_DIR}"
  fi
  if [[ ${rc} == 0 ]]; then
    step "compose-test passed in $((SECONDS - T0)) s"
  else
    step "compose-test FAILED after $((SECONDS - T0)) s"
  fi
  exit "${rc}"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${p}")
  done
  if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  for p in go mvn java; do command -v "${p}" >/dev/null || { echo "compose-test: ${p} is needed" >&2; exit 1; }; done
}

start_socket() {
  step "podman API socket at ${RUN_DIR}/podman.sock"
  if [[ -S "${RUN_DIR}/podman.sock" ]] && curl -sf --unix-socket "${RUN_DIR}/podman.sock" http://d/_ping >/dev/null; then
    echo "compose-test: a podman socket of project ${PROJECT} is running already (another compose-test?)" >&2
    exit 1
  fi
  mkdir -p "${RUN_DIR}"
  rm -f "${RUN_DIR}/podman.sock"  # a dead run's; the live one answered above
  podman system service --time=0 "${DOCKER_HOST}" >"${RUN_DIR}/service.log" 2>&1 &
  SOCKET_PID=$!
  for _ in $(seq 50); do
    curl -sf --unix-socket "${RUN_DIR}/podman.sock" http://d/_ping >/dev/null && return
    sleep 0.2
  done
  cat "${RUN_DIR}/service.log" >&2
  echo "compose-test: the podman API socket did not come up" >&2
  exit 1
}

# free_port DEFAULT: DEFAULT when nothing listens there, else a free port.
free_port() {
  if ! ss -Hltn "sport = :$1" | grep -q .; then echo "$1"; return; fi
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

choose_ports() {
  local name def p
  for name in SHOP_HTTP_PORT:28080 SHOP_GRPC_PORT:29090 SHOP_KAFKA_PORT:29092 SHOP_POSTGRES_PORT:25432; do
    def="${name#*:}"; name="${name%%:*}"
    p="$(free_port "${!name:-${def}}")"
    [[ "${p}" == "${!name:-${def}}" ]] || say "${name}: port ${!name:-${def}} is taken, using ${p}"
    export "${name}=${p}"
  done
  say "gateway http 127.0.0.1:${SHOP_HTTP_PORT}, grpc :${SHOP_GRPC_PORT}, kafka :${SHOP_KAFKA_PORT}, postgres :${SHOP_POSTGRES_PORT}"
}

build_images() {
  step "stand-in base images (deploy/ci-images/build.sh)"
  bash "${ROOT}/deploy/ci-images/build.sh"
  local start
  step "shop images from their Dockerfiles"
  start=${SECONDS}
  # The host's Go module downloads as the module proxy (falling back to the
  # real one) and its build cache: the gateway's deps are not fetched or
  # compiled again when `make test` or a developer already did.
  local gomod gocache
  gomod="$(go env GOMODCACHE)/cache/download"
  gocache="$(go env GOCACHE)"
  mkdir -p "${gomod}" "${gocache}"
  podman build --quiet --pull=never -f "${ROOT}/gateway/Dockerfile" --ignorefile "${ROOT}/.dockerignore" \
    -v "${gomod}:/var/cache/goproxy:ro" -v "${gocache}:/var/cache/go-build" \
    --build-arg GOPROXY=file:///var/cache/goproxy,https://proxy.golang.org \
    --build-arg GOCACHE=/var/cache/go-build \
    -t docker.io/shop/gateway:dev "${ROOT}" >/dev/null || { echo "compose-test: building gateway/Dockerfile failed" >&2; exit 1; }
  say "gateway image in $((SECONDS - start)) s"
  local svc port
  for svc in service_a:8002 service_b:8001; do
    port="${svc#*:}"; svc="${svc%%:*}"; start=${SECONDS}
    podman build --quiet --pull=never -f "${ROOT}/deploy/service.Dockerfile" \
      --ignorefile "${ROOT}/deploy/service.Dockerfile.dockerignore" \
      --build-arg "SERVICE=${svc}" --build-arg "PORT=${port}" \
      -t "docker.io/shop/${svc}:dev" "${ROOT}" >/dev/null || { echo "compose-test: building ${svc} failed" >&2; exit 1; }
    say "${svc} image in $((SECONDS - start)) s"
  done
}

# health_loop runs the project's healthchecks every 3 s, as the engine
# would with systemd.
health_loop() {
  while sleep 3; do
    for id in $(podman ps -q --filter "label=com.docker.compose.project=${PROJECT}" --filter health=starting) \
      $(podman ps -q --filter "label=com.docker.compose.project=${PROJECT}" --filter health=healthy) \
      $(podman ps -q --filter "label=com.docker.compose.project=${PROJECT}" --filter health=unhealthy); do
      podman healthcheck run "${id}" >/dev/null 2>&1 || true
    done
  done
}

cid() { compose ps -q "$1" 2>/dev/null | head -1; }

# report_unhealthy: the logs of every service that is not up and healthy.
report_unhealthy() {
  local svc id state bad=""
  for svc in kafka postgres service_a service_b gateway; do
    id="$(cid "${svc}")"
    if [[ -z "${id}" ]]; then bad="${bad} ${svc}"; logs "${svc}"; continue; fi
    state="$(podman inspect --format '{{.State.Status}}/{{.State.Health.Status}}' "${id}" 2>/dev/null || echo gone)"
    if [[ "${state}" != running/healthy ]]; then
      bad="${bad} ${svc}(${state})"
      logs "${svc}"
      printf -- '---- %s: last healthcheck output ----\n%s\n' "${svc}" \
        "$(podman inspect --format '{{range .State.Health.Log}}{{.Output}}{{end}}' "${id}" 2>/dev/null | tail -5)" >&2
    fi
  done
  for svc in keys identity-keys; do
    id="$(cid "${svc}")"
    state="$( [[ -n "${id}" ]] && podman inspect --format '{{.State.ExitCode}}' "${id}" 2>/dev/null || echo missing)"
    if [[ "${state}" != 0 ]]; then bad="${bad} ${svc}(exit ${state})"; logs "${svc}"; fi
  done
  printf '\ncompose-test: FAILED: not healthy:%s\n' "${bad:- (none; see the output of up above)}" >&2
}

up() {
  step "up (project ${PROJECT}; healthchecks run every 3 s)"
  health_loop &
  HEALTH_PID=$!
  STARTED=1
  local start=${SECONDS}
  if ! timeout "${HEALTH_TIMEOUT}" docker-compose --ansi never up -d --no-build >&2 2>&1; then
    report_unhealthy
    exit 1
  fi
  # Nothing waits for the gateway to be healthy: wait here, and stop at
  # the first verdict (unhealthy: its retries are used up; or it exited).
  local id state=""
  for _ in $(seq "${HEALTH_TIMEOUT}"); do
    id="$(cid gateway)"
    state="$( [[ -n "${id}" ]] && podman inspect --format '{{.State.Status}}/{{.State.Health.Status}}' "${id}" 2>/dev/null)" || state=""
    case "${state}" in
      running/healthy) break ;;
      running/unhealthy | exited/* | stopped/*) break ;;
    esac
    sleep 1
  done
  [[ "${state}" == running/healthy ]] || { report_unhealthy; exit 1; }
  say "all services healthy $((SECONDS - start)) s after up"
}

BASE=""
# call SERVICE METHOD PATH TOKEN [BODY]: prints the body; fails naming
# SERVICE unless the status is 2xx.
call() {
  local svc="$1" method="$2" path="$3" token="$4" body="${5:-}" out code
  local args=(-sS -o "${RUN_DIR}/body" -w '%{http_code}' -X "${method}" --max-time 15)
  [[ -n "${token}" ]] && args+=(-H "Authorization: Bearer ${token}")
  [[ -n "${body}" ]] && args+=(-H 'Content-Type: application/json' -d "${body}")
  code="$(curl "${args[@]}" "${BASE}${path}" 2>&1)" || code="curl: ${code}"
  out="$(cat "${RUN_DIR}/body" 2>/dev/null || true)"
  if [[ "${code}" != 2?? ]]; then
    fail "${svc}" "${method} ${path}: ${code} ${out}"
  fi
  printf '%s' "${out}"
}

token() {
  local t
  t="$(compose run --rm -T keys "$@" 2>"${RUN_DIR}/keys.err" | tr -d '\r' | tail -1)" || true
  [[ "${t}" == *.*.* ]] || { cat "${RUN_DIR}/keys.err" >&2; fail keys "no token from the keys job ($*)"; }
  printf '%s' "${t}"
}

# consume TOPIC WANT: reads TOPIC from the beginning on the compose broker
# until a record whose headers or value contain WANT shows up (30 s).
consume() {
  local topic="$1" want="$2" out
  for _ in 1 2 3; do
    out="$(compose exec -T kafka /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server kafka:19092 \
      --topic "${topic}" --from-beginning --timeout-ms 10000 --property print.headers=true 2>&1)" || true
    if grep -q "${want}" <<<"${out}"; then
      say "${topic}: $(grep -c "${want}" <<<"${out}") ${want} event(s)"
      return
    fi
  done
  printf '%s\n' "${out}" | tail -20 >&2
  fail "kafka gateway" "no ${want} event on ${topic}"
}

journey() {
  BASE="http://127.0.0.1:${SHOP_HTTP_PORT}"
  step "journey through the gateway at ${BASE}"
  local user admin out pid=4242
  user="$(token -sub 7)"
  admin="$(token -sub 1 -scope shop:admin)"
  say "tokens from the keys job: user 7, admin 1"
  call "gateway service_a" POST /stock "${admin}" "{\"product_id\": ${pid}, \"product_name\": \"compose mug\", \"quantity\": 5, \"price_cents\": 1250}" >/dev/null
  out="$(call "gateway service_a" GET /stock "")"
  grep -q '"compose mug"' <<<"${out}" || fail "gateway service_a" "GET /stock does not list product ${pid}: ${out}"
  say "stock lists product ${pid}"
  call "gateway service_a" POST /cart/add "${user}" "{\"product_id\": ${pid}, \"quantity\": 2}" >/dev/null
  say "added 2 x ${pid} to user 7's cart"
  for _ in $(seq 30); do
    out="$(call "gateway service_b" GET /cart "${user}")"
    grep -q "\"${pid}\"" <<<"${out}" && break
    sleep 1
  done
  grep -q "\"${pid}\"" <<<"${out}" || fail "gateway service_b" "GET /cart does not show product ${pid}: ${out}"
  say "cart: ${out}"
  # One retry, said aloud: on a loaded 2-core machine B's first call to A
  # has been seen to time out while connecting (B gives the reservation
  # back and answers 5xx, so paying again is safe); twice fails the run.
  if ! out="$(call "gateway service_b" POST /order/pay "${user}" '{}' 2>"${RUN_DIR}/pay.err")"; then
    say "WARNING: the first payment failed, paying again once: $(grep -m1 FAILED "${RUN_DIR}/pay.err")"
    sleep 3
    out="$(call "gateway service_b" POST /order/pay "${user}" '{}')"
  fi
  say "paid: ${out}"
  step "events on the compose broker"
  consume shop.cart.v1 CartItemAdded
  consume shop.order.v1 OrderPaid
}

main() {
  [[ ${EUID} -eq 0 ]] || { echo "compose-test: run as root (podman, apt-get)" >&2; exit 1; }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  install_packages
  start_socket
  if [[ -n "$(podman ps -a -q --filter "label=com.docker.compose.project=${PROJECT}")" ]]; then
    step "removing what an earlier run of project ${PROJECT} left"
    STARTED=1
    docker-compose --ansi never down -v --remove-orphans --timeout 5 >&2 2>&1 || true
  fi
  build_images
  choose_ports
  up
  journey
}

main "$@"
