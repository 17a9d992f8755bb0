#!/usr/bin/env bash
# Runs the pytest suites of service_a and service_b, one after the other (each
# service has its own `app` package, so they cannot share one pytest process).
#
# Usage: scripts/pytest.sh unit|integration [extra pytest args...]
#   unit         everything but tests/integration: SQLite always, PostgreSQL too
#                when TEST_DATABASE_URL_A / TEST_DATABASE_URL_B are set. No Kafka.
#   integration  tests/integration: needs the broker on $KAFKA_BROKERS
#                (default 127.0.0.1:9092; `scripts/kafka.sh start`). One test
#                stops and restarts that broker with scripts/kafka.sh.
#
# Env: PY (default <repo>/.venv/bin/python). With CI set, a missing broker or
# database fails the tests instead of skipping them.
# Exits non-zero when any suite fails or collects no test.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-${ROOT}/.venv/bin/python}"
kind="${1:-}"
(($# > 0)) && shift

case "${kind}" in
  unit) selection=(-m "not integration") ;;
  integration) selection=(-m integration tests/integration) ;;
  *)
    echo "usage: scripts/pytest.sh unit|integration [pytest args...]" >&2
    exit 2
    ;;
esac

[[ -x "${PY}" ]] || { echo "pytest.sh: ${PY} not found; run make venv" >&2; exit 2; }

report_dir="$(mktemp -d)"
trap 'rm -rf "${report_dir}"' EXIT

failed=()
summary=()
for service in service_a service_b; do
  echo "==> ${service}: ${kind} tests"
  start=${SECONDS}
  set +e
  (cd "${ROOT}/${service}" &&
    "${PY}" -m pytest -q -p no:cacheprovider --junitxml="${report_dir}/${service}.xml" "${selection[@]}" "$@")
  rc=$?
  set -e
  case ${rc} in
    0) result="ok" ;;
    5) result="FAILED (no test collected)"; failed+=("${service}") ;;
    *) result="FAILED (pytest exit ${rc})"; failed+=("${service}") ;;
  esac
  summary+=("${service} ${kind}: ${result} in $((SECONDS - start)) s")
done

printf 'pytest.sh: %s\n' "${summary[@]}"
# One closing line over both services: "python: N passed, N failed, N skipped".
"${PY}" - "${report_dir}" <<'PYEOF'
import pathlib, sys, xml.etree.ElementTree as ET
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in total:
            total[key] += int(suite.get(key, 0))
bad = total["failures"] + total["errors"]
passed = total["tests"] - bad - total["skipped"]
sys.stdout.write(f"python: {passed} passed, {bad} failed, {total['skipped']} skipped\n")
PYEOF
if ((${#failed[@]} > 0)); then
  echo "pytest.sh: failed: ${failed[*]}" >&2
  exit 1
fi
