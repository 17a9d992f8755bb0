#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker and controller in
# one JVM) from Maven Central jars, for development and integration tests.
# No Docker and no Kafka distribution tarball: the jars come from
# scripts/kafka/pom.xml through Maven, and everything the broker writes lives
# under $KAFKA_HOME_DIR. Run `scripts/kafka.sh help` for the subcommands.
set -euo pipefail

readonly KAFKA_VERSION="4.3.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly POM="${SCRIPT_DIR}/kafka/pom.xml"

KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-${REPO_ROOT}/.kafka}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

readonly HOST="127.0.0.1"
readonly BOOTSTRAP="${HOST}:${KAFKA_PORT}"
readonly LIB_DIR="${KAFKA_HOME_DIR}/lib"
readonly DATA_DIR="${KAFKA_HOME_DIR}/data"
readonly CONF_DIR="${KAFKA_HOME_DIR}/config"
readonly PID_FILE="${KAFKA_HOME_DIR}/kafka.pid"
readonly LOG_FILE="${KAFKA_HOME_DIR}/broker.log"
readonly STAMP_FILE="${LIB_DIR}/.fetched"
readonly LOCK_FILE="${KAFKA_HOME_DIR}/.lock"

usage() {
  cat <<EOF
Usage: scripts/kafka.sh COMMAND [ARGS]

Runs a single-node Apache Kafka ${KAFKA_VERSION} broker (KRaft) on ${HOST} for
development and tests, from jars resolved from Maven Central (Java 17+, Maven).

Commands:
  fetch                      Download the broker and tool jars into \$KAFKA_HOME_DIR/lib.
                             Skipped when they are already there for the current pom.
  start                      Fetch if needed, format the data dir on first use, start the
                             broker in the background and wait until it serves metadata.
                             No-op when it is already running. Fails (non-zero, with the
                             log tail) when the broker does not come up in time.
  stop                       Stop the broker (TERM, then KILL after a timeout) and wait
                             for its ports to be released. No-op when it is not running.
  restart                    stop, then start. The data dir is kept.
  status                     Exit 0 when the broker is running and serving metadata.
  reset                      stop, then delete the data dir (all topics and messages).
  topics                     List the topics.
  create-topic NAME [PARTS]  Create a topic (default 1 partition, replication factor 1).
                             No-op when it exists.
  produce TOPIC [ARGS...]    Console producer reading stdin, one record per line, as
                             "h1:v1,h2:v2<TAB>key<TAB>value". Extra ARGS go to the tool.
  consume TOPIC [ARGS...]    Console consumer from the beginning, printing headers, keys
                             and values, until Ctrl-C. Extra ARGS go to the tool, for
                             example --max-messages 1 or --timeout-ms 10000 (stop after
                             one record, or after 10 s without one).
  bootstrap                  Print the bootstrap address (${BOOTSTRAP}).
  logs                       Follow the broker log.
  help                       Show this help.

Environment:
  KAFKA_HOME_DIR         Jars, config, data, pid and log  (default: <repo>/.kafka)
  KAFKA_PORT             Client listener port              (default: 9092)
  KAFKA_CONTROLLER_PORT  KRaft controller listener port    (default: 9093)
  KAFKA_HEAP             Broker max heap, -Xmx             (default: 512m)
  KAFKA_START_TIMEOUT    Seconds to wait for the broker    (default: 180)
  KAFKA_STOP_TIMEOUT     Seconds before TERM becomes KILL  (default: 30)

Files under \$KAFKA_HOME_DIR: lib/ (jars), config/ (generated), data/ (log dirs),
kafka.pid, broker.log (broker.log.1 is the previous run).
EOF
}

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# lock serialises commands that change state, so that two concurrent
# `start`s (parallel make targets, two test packages) start one broker.
lock() {
  mkdir -p "${KAFKA_HOME_DIR}"
  exec 9>"${LOCK_FILE}"
  flock -w 300 9 || die "timed out waiting for ${LOCK_FILE}"
}

require_java() {
  command -v java >/dev/null 2>&1 || die "java not found: Kafka ${KAFKA_VERSION} needs Java 17 or newer"
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  if ! [[ "${major}" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "Kafka ${KAFKA_VERSION} needs Java 17 or newer, found java.specification.version=${major:-unknown}"
  fi
}

pom_hash() { sha256sum "${POM}" | cut -d' ' -f1; }

fetched() { [[ -f "${STAMP_FILE}" && "$(cat "${STAMP_FILE}")" == "$(pom_hash)" ]]; }

# do_fetch copies the jars into a temporary folder and renames it into place,
# so an interrupted download never leaves a half-filled lib/ that looks done.
do_fetch() {
  if fetched; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven to fetch the Kafka jars"
  local tmp="${KAFKA_HOME_DIR}/lib.tmp"
  rm -rf "${tmp}"
  log "fetching Kafka ${KAFKA_VERSION} jars into ${LIB_DIR}"
  if ! mvn -q -B -f "${POM}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="${tmp}" >"${KAFKA_HOME_DIR}/fetch.log" 2>&1; then
    cat "${KAFKA_HOME_DIR}/fetch.log" >&2
    die "could not resolve the Kafka jars (see above)"
  fi
  pom_hash >"${tmp}/.fetched"
  rm -rf "${LIB_DIR}"
  mv "${tmp}" "${LIB_DIR}"
  rm -f "${KAFKA_HOME_DIR}/fetch.log"
}

# write_config regenerates the configuration on every start, so a change of
# KAFKA_PORT or KAFKA_CONTROLLER_PORT takes effect on the next start while the
# data dir, and with it every topic and message, is kept.
write_config() {
  mkdir -p "${CONF_DIR}"
  cat >"${CONF_DIR}/server.properties" <<EOF
# Generated by scripts/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${DATA_DIR}

# One node: every internal topic has a single replica.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
delete.topic.enable=true
# Tests join consumer groups often; do not wait 3 s for more members.
group.initial.rebalance.delay.ms=0

# Sized for a laptop or a 2-core CI runner, not for throughput.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
EOF

  cat >"${CONF_DIR}/log4j2.properties" <<'EOF'
# Broker logging: stdout, which scripts/kafka.sh sends to broker.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
# Per-request and per-segment chatter that drowns out what matters in tests.
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
# A client's metadata request may ask the broker to create a topic that a
# service or the gateway is creating at the same moment; the broker then
# warns TOPIC_ALREADY_EXISTS although nothing is wrong (the topic exists,
# with the creator's settings). Real failures of topic creation reach the
# creators as errors.
logger.autotopic.name = kafka.server.DefaultAutoTopicCreationManager
logger.autotopic.level = error
EOF

  cat >"${CONF_DIR}/log4j2-tools.properties" <<'EOF'
# Command-line tools: warnings and errors only, on stderr.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
# The console consumer ends a `--timeout-ms` or `--max-messages` read by
# logging its TimeoutException at ERROR; that is the normal way out of
# `consume`, and it still prints how many records it read.
logger.console.name = org.apache.kafka.tools.consumer.ConsoleConsumer
logger.console.level = off
EOF

  # Admin-client limits for the readiness probe: fail fast and retry instead
  # of blocking for the default 60 s while the broker is still starting.
  cat >"${CONF_DIR}/probe.properties" <<'EOF'
request.timeout.ms=3000
default.api.timeout.ms=5000
EOF
}

# tool_java prints the JVM options for Kafka's command-line tools: a small
# client JVM tuned for start-up time, not throughput.
tool_java() {
  printf '%s\n' -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=${CONF_DIR}/log4j2-tools.properties" -cp "${LIB_DIR}/*"
}

# run_tool runs one of Kafka's command-line tools against the local broker.
run_tool() {
  local opts
  mapfile -t opts < <(tool_java)
  java "${opts[@]}" "$@"
}

# broker_pid prints the pid from the pid file when that process is alive and
# is our broker; a stale file (crash, reboot, recycled pid) is removed.
broker_pid() {
  [[ -f "${PID_FILE}" ]] || return 1
  local pid
  pid="$(cat "${PID_FILE}")"
  if [[ "${pid}" =~ ^[0-9]+$ ]] && alive "${pid}" &&
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    echo "${pid}"
    return 0
  fi
  rm -f "${PID_FILE}"
  return 1
}

# alive treats a zombie as dead: in a container whose init does not reap,
# an exited broker would otherwise look alive forever.
alive() {
  local pid="$1" state
  kill -0 "${pid}" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/${pid}/stat" 2>/dev/null || true)"
  [[ -n "${state}" && "${state}" != "Z" ]]
}

port_open() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

serving() {
  local opts
  mapfile -t opts < <(tool_java)
  timeout 20 java "${opts[@]}" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "${BOOTSTRAP}" --command-config "${CONF_DIR}/probe.properties" \
    --list >/dev/null 2>&1
}

log_tail() {
  log "last lines of ${LOG_FILE}:"
  tail -n 60 "${LOG_FILE}" >&2 2>/dev/null || true
}

# heap_min keeps -Xms at 256m unless the requested maximum is smaller.
heap_min() {
  local mb
  case "${KAFKA_HEAP}" in
    *[gG]) mb=$((${KAFKA_HEAP%?} * 1024)) ;;
    *[mM]) mb=${KAFKA_HEAP%?} ;;
    *) mb=256 ;;
  esac
  if ((mb < 256)); then echo "${KAFKA_HEAP}"; else echo 256m; fi
}

cmd_start() {
  lock
  local pid
  if pid="$(broker_pid)"; then
    if serving; then
      log "already running (pid ${pid}) on ${BOOTSTRAP}"
      return 0
    fi
    log "broker pid ${pid} is running but not serving yet; waiting"
    wait_serving "${pid}"
    return 0
  fi

  require_java
  do_fetch
  local port
  for port in "${KAFKA_PORT}" "${KAFKA_CONTROLLER_PORT}"; do
    if port_open "${port}"; then
      die "port ${HOST}:${port} is already in use by another process (ss -ltnp 'sport = :${port}')"
    fi
  done
  write_config

  if [[ ! -f "${DATA_DIR}/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(run_tool kafka.tools.StorageTool random-uuid)"
    log "formatting ${DATA_DIR} (cluster id ${cluster_id})"
    mkdir -p "${DATA_DIR}"
    run_tool kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "${cluster_id}" --config "${CONF_DIR}/server.properties" >/dev/null
  fi

  if [[ -f "${LOG_FILE}" ]]; then
    mv -f "${LOG_FILE}" "${LOG_FILE}.1"
  fi
  log "starting Kafka ${KAFKA_VERSION} on ${BOOTSTRAP} (log: ${LOG_FILE})"
  # stdin from /dev/null and no shared pipes, so that callers capturing our
  # output (make, $(...), CI) are not held open by the broker; fd 9 is the
  # lock, which must not outlive this command.
  nohup java -Xms"$(heap_min)" -Xmx"${KAFKA_HEAP}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="${CONF_DIR}/log4j2.properties" \
    -cp "${LIB_DIR}/*" kafka.Kafka "${CONF_DIR}/server.properties" \
    </dev/null >>"${LOG_FILE}" 2>&1 9>&- &
  pid=$!
  echo "${pid}" >"${PID_FILE}"
  wait_serving "${pid}"
}

# wait_serving polls the port cheaply, then asks the broker for its topic
# list, which only succeeds once the broker has caught up with the metadata
# log and registered with the controller.
wait_serving() {
  local pid="$1" start=${SECONDS}
  while ((SECONDS - start < KAFKA_START_TIMEOUT)); do
    if ! alive "${pid}"; then
      rm -f "${PID_FILE}"
      log_tail
      die "broker exited during start-up"
    fi
    if port_open "${KAFKA_PORT}" && serving; then
      log "serving on ${BOOTSTRAP} (pid ${pid}, ready after $((SECONDS - start)) s)"
      return 0
    fi
    sleep 0.3
  done
  log_tail
  log "broker did not serve metadata within ${KAFKA_START_TIMEOUT} s; stopping it"
  stop_pid "${pid}"
  exit 1
}

stop_pid() {
  local pid="$1" start=${SECONDS}
  kill -TERM "${pid}" 2>/dev/null || true
  while alive "${pid}" && ((SECONDS - start < KAFKA_STOP_TIMEOUT)); do
    sleep 0.2
  done
  if alive "${pid}"; then
    log "broker pid ${pid} ignored TERM for ${KAFKA_STOP_TIMEOUT} s; killing it"
    kill -KILL "${pid}" 2>/dev/null || true
    while alive "${pid}"; do sleep 0.1; done
  fi
  rm -f "${PID_FILE}"
  # The sockets close with the process; this only guards against a slow exit.
  start=${SECONDS}
  while { port_listening "${KAFKA_PORT}" || port_listening "${KAFKA_CONTROLLER_PORT}"; } &&
    ((SECONDS - start < 10)); do
    sleep 0.2
  done
}

port_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

cmd_stop() {
  lock
  local pid
  if ! pid="$(broker_pid)"; then
    log "not running"
    return 0
  fi
  log "stopping broker (pid ${pid})"
  stop_pid "${pid}"
  log "stopped"
}

cmd_status() {
  local pid
  if ! pid="$(broker_pid)"; then
    log "not running"
    return 1
  fi
  if serving; then
    log "running (pid ${pid}) and serving on ${BOOTSTRAP}"
    return 0
  fi
  log "running (pid ${pid}) but not serving on ${BOOTSTRAP}"
  return 1
}

cmd_reset() {
  cmd_stop
  log "deleting ${DATA_DIR}"
  rm -rf "${DATA_DIR}"
}

require_running() {
  broker_pid >/dev/null || port_open "${KAFKA_PORT}" ||
    die "no broker on ${BOOTSTRAP}; run scripts/kafka.sh start"
}

main() {
  local cmd="${1:-help}"
  (($# > 0)) && shift
  case "${cmd}" in
    fetch)
      lock
      require_java
      do_fetch
      ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
      cmd_stop
      cmd_start
      ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    topics)
      require_running
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${BOOTSTRAP}" --list
      ;;
    create-topic)
      (($# >= 1)) || die "usage: scripts/kafka.sh create-topic NAME [PARTITIONS]"
      require_running
      run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${BOOTSTRAP}" \
        --create --if-not-exists --topic "$1" --partitions "${2:-1}" --replication-factor 1
      ;;
    produce)
      (($# >= 1)) || die "usage: scripts/kafka.sh produce TOPIC [ARGS...]"
      require_running
      local topic="$1"
      shift
      run_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "${BOOTSTRAP}" \
        --topic "${topic}" --reader-property parse.headers=true --reader-property parse.key=true "$@"
      ;;
    consume)
      (($# >= 1)) || die "usage: scripts/kafka.sh consume TOPIC [ARGS...]"
      require_running
      local topic="$1"
      shift
      run_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "${BOOTSTRAP}" \
        --topic "${topic}" --from-beginning --consumer-property group.protocol=consumer \
        --formatter-property print.headers=true --formatter-property print.key=true "$@"
      ;;
    bootstrap) echo "${BOOTSTRAP}" ;;
    logs) tail -n 100 -F "${LOG_FILE}" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
