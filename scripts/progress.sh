#!/usr/bin/env bash
# Runs a command that may take minutes (tool builds, the venv, a broker
# download) and says so: a line when it starts, one every PROGRESS_EVERY
# seconds (default 30) while it runs, and one when it ends with its time.
#
# Usage: scripts/progress.sh LABEL COMMAND [ARGS...]
# Exits with the command's status.
set -uo pipefail

label="$1"
shift
every="${PROGRESS_EVERY:-30}"
start=${SECONDS}
echo "${label}: started"
"$@" &
pid=$!
# Forward a stop to the command instead of leaving it running behind us.
trap 'kill -TERM "${pid}" 2>/dev/null; wait "${pid}"; exit 143' INT TERM
while kill -0 "${pid}" 2>/dev/null; do
  for ((i = 0; i < every; i++)); do
    sleep 1
    kill -0 "${pid}" 2>/dev/null || break 2
  done
  echo "${label}: still running ($((SECONDS - start)) s)"
done
wait "${pid}"
rc=$?
if ((rc == 0)); then
  echo "${label}: done in $((SECONDS - start)) s"
else
  echo "${label}: FAILED (exit ${rc}) after $((SECONDS - start)) s"
fi
exit "${rc}"
