#!/usr/bin/env bash
# Runs a private PostgreSQL cluster on 127.0.0.1 for CI and local tests of the
# services' PostgreSQL storage (DATABASE_URL). It never touches a system
# cluster: the data lives under $PG_HOME_DIR and the server listens on TCP
# only. Run `scripts/postgres.sh help` for the subcommands.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

PG_HOME_DIR="${PG_HOME_DIR:-${REPO_ROOT}/.pg}"
PG_PORT="${PG_PORT:-5432}"
PG_DATABASES="${PG_DATABASES:-shop_a shop_b}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"

readonly HOST="127.0.0.1"
readonly SUPERUSER="postgres"

usage() {
  cat <<EOF
Usage: scripts/postgres.sh COMMAND [ARGS]

Runs a private PostgreSQL cluster on ${HOST} for CI and local tests. Trust
authentication, superuser "${SUPERUSER}", no password: never expose it.

Commands:
  start       Install PostgreSQL with apt-get when it is missing, create the cluster
              on first use, start it, wait until it accepts connections and create
              the databases (${PG_DATABASES}). No-op when it is already running.
  stop        Stop the cluster (fast shutdown). No-op when it is not running.
  status      Exit 0 when the cluster is running and accepts connections.
  url [DB]    Print a connection URL, e.g. postgresql://${SUPERUSER}@${HOST}:${PG_PORT}/shop_a
              (DB defaults to postgres).
  psql [DB]   Open psql on DB (default postgres); extra arguments go to psql.
  reset       stop, then delete the cluster and all its data.
  help        Show this help.

Environment:
  PG_HOME_DIR       Cluster data and server log   (default: <repo>/.pg)
  PG_PORT           TCP port on ${HOST}          (default: 5432)
  PG_DATABASES      Databases created on start    (default: "shop_a shop_b")
  PG_START_TIMEOUT  Seconds to wait for the server (default: 60)

When run as root the server runs as the "postgres" user. If that user cannot
reach PG_HOME_DIR (a clone under /root, say), the cluster is kept under
/var/tmp instead; \`scripts/postgres.sh status\` prints where.
EOF
}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# as_owner runs a command as the user that owns the cluster: postgres when we
# are root (the server refuses to run as root), ourselves otherwise.
as_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# cluster_home picks the folder that holds the cluster. As root it must be
# reachable by the postgres user, which a clone under a private home is not;
# then a folder under /var/tmp, named after PG_HOME_DIR, stands in for it.
cluster_home() {
  if ! is_root || ! id postgres >/dev/null 2>&1; then
    echo "${PG_HOME_DIR}"
    return
  fi
  local parent
  parent="$(dirname "${PG_HOME_DIR}")"
  mkdir -p "${parent}"
  if runuser -u postgres -- test -x "${parent}" 2>/dev/null; then
    echo "${PG_HOME_DIR}"
  else
    echo "/var/tmp/shop-pg-$(printf '%s' "${PG_HOME_DIR}" | sha256sum | cut -c1-12)"
  fi
}

# find_bin prints the folder with initdb and pg_ctl: the newest Debian
# install under /usr/lib/postgresql, or whatever is on PATH elsewhere.
find_bin() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
    sort -V | tail -n 1)"
  if [[ -n "${dir}" && -x "${dir}/initdb" && -x "${dir}/pg_ctl" ]]; then
    echo "${dir}"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

install_postgres() {
  command -v apt-get >/dev/null 2>&1 ||
    die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL (initdb, pg_ctl) and retry"
  is_root || die "PostgreSQL is not installed; run as root to install it with apt-get, or install it yourself"
  log "installing PostgreSQL with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package creates and may start a system cluster on 5432; ours is
  # private, so stop that one to free the port.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    local ver name
    while read -r ver name _; do
      pg_ctlcluster "${ver}" "${name}" stop 2>/dev/null || true
    done < <(pg_lsclusters -h 2>/dev/null | awk '$4 == "online"')
  fi
}

port_open() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

# Set once by setup().
BIN=""
HOME_DIR=""
DATA_DIR=""
LOG_FILE=""

setup() {
  HOME_DIR="$(cluster_home)"
  DATA_DIR="${HOME_DIR}/data"
  LOG_FILE="${HOME_DIR}/postgres.log"
  BIN="$(find_bin)" || return 1
}

running() { [[ -f "${DATA_DIR}/PG_VERSION" ]] && as_owner "${BIN}/pg_ctl" -D "${DATA_DIR}" status >/dev/null 2>&1; }

ready() { "${BIN}/pg_isready" -q -h "${HOST}" -p "${PG_PORT}" -U "${SUPERUSER}" -t 2; }

lock() {
  mkdir -p "${PG_HOME_DIR}"
  exec 9>"${PG_HOME_DIR}/.lock"
  flock -w 300 9 || die "timed out waiting for ${PG_HOME_DIR}/.lock"
}

init_cluster() {
  log "creating cluster in ${DATA_DIR}"
  mkdir -p "${DATA_DIR}"
  chmod 700 "${DATA_DIR}"
  if is_root; then
    chown -R postgres: "${HOME_DIR}"
  fi
  as_owner "${BIN}/initdb" -D "${DATA_DIR}" -U "${SUPERUSER}" --auth=trust \
    -E UTF8 --locale=C --no-instructions >"${HOME_DIR}/initdb.log" 2>&1 || {
    cat "${HOME_DIR}/initdb.log" >&2
    die "initdb failed"
  }
  rm -f "${HOME_DIR}/initdb.log"
  # TCP on loopback only and no Unix socket, so nothing depends on
  # /var/run/postgresql. Durability is traded for speed: this cluster holds
  # test data that a crash may lose.
  as_owner tee -a "${DATA_DIR}/postgresql.conf" >/dev/null <<EOF

# Added by scripts/postgres.sh.
listen_addresses = '${HOST}'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
EOF
}

create_databases() {
  local db
  for db in ${PG_DATABASES}; do
    if [[ -z "$("${BIN}/psql" -h "${HOST}" -p "${PG_PORT}" -U "${SUPERUSER}" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '${db}'")" ]]; then
      "${BIN}/createdb" -h "${HOST}" -p "${PG_PORT}" -U "${SUPERUSER}" "${db}"
      log "created database ${db}"
    fi
  done
}

cmd_start() {
  lock
  if ! setup; then
    install_postgres
    setup || die "PostgreSQL was installed but initdb/pg_ctl were not found"
  fi
  if running; then
    wait_ready
    create_databases
    log "already running on ${HOST}:${PG_PORT} (${DATA_DIR})"
    return 0
  fi
  if port_open "${PG_PORT}"; then
    die "port ${HOST}:${PG_PORT} is already in use by another process; set PG_PORT"
  fi
  if [[ ! -f "${DATA_DIR}/PG_VERSION" ]]; then
    init_cluster
  fi
  if is_root; then
    chown postgres: "${HOME_DIR}"
  fi
  log "starting PostgreSQL ($("${BIN}/postgres" --version)) on ${HOST}:${PG_PORT} (log: ${LOG_FILE})"
  # fd 9 is the lock, which must not be inherited by the server.
  if ! as_owner "${BIN}/pg_ctl" -D "${DATA_DIR}" -l "${LOG_FILE}" -o "-p ${PG_PORT}" \
    -w -t "${PG_START_TIMEOUT}" start >/dev/null 9>&-; then
    tail -n 40 "${LOG_FILE}" >&2 || true
    die "PostgreSQL did not start"
  fi
  wait_ready
  create_databases
  log "accepting connections on ${HOST}:${PG_PORT}"
}

wait_ready() {
  local start=${SECONDS}
  until ready; do
    if ((SECONDS - start >= PG_START_TIMEOUT)); then
      tail -n 40 "${LOG_FILE}" >&2 || true
      die "PostgreSQL did not accept connections within ${PG_START_TIMEOUT} s"
    fi
    sleep 0.2
  done
}

cmd_stop() {
  lock
  if ! setup || ! running; then
    log "not running"
    return 0
  fi
  as_owner "${BIN}/pg_ctl" -D "${DATA_DIR}" -m fast -w -t 60 stop >/dev/null
  log "stopped"
}

cmd_status() {
  setup || die "PostgreSQL is not installed"
  if running && ready; then
    log "running on ${HOST}:${PG_PORT} (${DATA_DIR})"
    return 0
  fi
  log "not running (${DATA_DIR})"
  return 1
}

cmd_reset() {
  cmd_stop
  setup || true
  log "deleting ${HOME_DIR}"
  rm -rf "${HOME_DIR}"
}

main() {
  local cmd="${1:-help}"
  (($# > 0)) && shift
  case "${cmd}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) echo "postgresql://${SUPERUSER}@${HOST}:${PG_PORT}/${1:-postgres}" ;;
    psql)
      setup || die "PostgreSQL is not installed"
      local db="${1:-postgres}"
      (($# > 0)) && shift
      exec "${BIN}/psql" -h "${HOST}" -p "${PG_PORT}" -U "${SUPERUSER}" -d "${db}" "$@"
      ;;
    reset) cmd_reset ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
