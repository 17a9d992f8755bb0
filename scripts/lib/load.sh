# shellcheck shell=bash
# The load guard of every script that prints benchmark figures (bench.sh,
# bench-services.sh, bench-stack.sh, bench/growth.py). Source it, call
# load_guard NAME before anything else, and load_at_end last (in the EXIT
# trap, so that it runs on failure too):
#
#   source "${ROOT}/scripts/lib/load.sh"
#   load_guard bench
#   trap 'cleanup; load_at_end' EXIT
#
# load_guard prints the 1-minute load average (/proc/loadavg) and, when it
# is above BENCH_LOAD_MAX, waits up to BENCH_LOAD_WAIT seconds for it to come
# down, then refuses: it exits with status 3 and says why. Figures taken on
# a machine that is already busy measure the other work as much as the code.
# BENCH_IGNORE_LOAD=1 goes on anyway for a test of the scripts themselves:
# every line the script (and whatever it runs) prints from then on starts
# with "NOT A FIGURE: load X |", so no such line can pass for a figure
# (stderr is sent to stdout then, to keep the lines in order).
#
# Env (defaults in brackets): BENCH_LOAD_MAX [1.5] BENCH_LOAD_WAIT [120]
# (seconds) BENCH_IGNORE_LOAD [0]. load_guard exports BENCH_LOAD_CHECKED, so
# a figure-printing program run by a guarded script does not check again
# (the script's own work is the load by then).
#
# Run as a command (bash scripts/lib/load.sh CMD [ARGS...]) it runs CMD
# between load_guard and load_at_end, for programs that are not shell
# scripts (bench/growth.py re-runs itself this way when started on its own);
# BENCH_LOAD_NAME names it in the messages (default: CMD's file name).

BENCH_LOAD_MAX="${BENCH_LOAD_MAX:-1.5}"
BENCH_LOAD_WAIT="${BENCH_LOAD_WAIT:-120}"
BENCH_IGNORE_LOAD="${BENCH_IGNORE_LOAD:-0}"
_LOAD_NAME=load
_LOAD_MARK_PIDS=()

# load_1min prints the 1-minute load average.
load_1min() { cut -d' ' -f1 /proc/loadavg; }

_load_say() { printf '[%s] %s\n' "${_LOAD_NAME}" "$*" >&2; }

# _load_above LOAD: whether LOAD is above BENCH_LOAD_MAX.
_load_above() { awk -v l="$1" -v m="${BENCH_LOAD_MAX}" 'BEGIN { exit !(l + 0 > m + 0) }'; }

# load_guard NAME: see the header. NAME prefixes its messages.
load_guard() {
  _LOAD_NAME="$1"
  local load waited=0 step=5
  if ! [[ "${BENCH_LOAD_WAIT}" =~ ^[0-9]+$ ]]; then
    _load_say "BENCH_LOAD_WAIT=${BENCH_LOAD_WAIT}: want whole seconds"
    exit 2
  fi
  load="$(load_1min)"
  _load_say "1-minute load average at start: ${load} (figures are refused above ${BENCH_LOAD_MAX})"
  if _load_above "${load}" && ((BENCH_LOAD_WAIT > 0)); then
    _load_say "waiting up to ${BENCH_LOAD_WAIT} s for it to drop to ${BENCH_LOAD_MAX} (BENCH_LOAD_WAIT)"
    while _load_above "${load}" && ((waited < BENCH_LOAD_WAIT)); do
      ((step > BENCH_LOAD_WAIT - waited)) && step=$((BENCH_LOAD_WAIT - waited))
      sleep "${step}"
      waited=$((waited + step))
      load="$(load_1min)"
      ((waited % 30 == 0)) && _load_say "after ${waited} s: load ${load}"
    done
  fi
  if _load_above "${load}"; then
    if [[ "${BENCH_IGNORE_LOAD}" != 1 ]]; then
      _load_say "REFUSED: the 1-minute load is ${load}, above ${BENCH_LOAD_MAX}, after waiting ${waited} s."
      _load_say "Something else is using this machine, and it would be measured too. Run again when it is quiet"
      _load_say "(a longer BENCH_LOAD_WAIT waits longer); BENCH_IGNORE_LOAD=1 runs anyway to test the scripts,"
      _load_say "with every output line marked NOT A FIGURE."
      exit 3
    fi
    _load_say "BENCH_IGNORE_LOAD=1: going on at load ${load}; every line from here on is marked NOT A FIGURE"
    _load_mark "${load}"
  elif ((waited > 0)); then
    _load_say "load ${load} after ${waited} s: going on"
  fi
  export BENCH_LOAD_CHECKED=1
}

# _load_mark LOAD: prefix every later line of stdout and stderr. Both go
# through one marker to stdout, so that their lines keep their order.
_load_mark() {
  local prefix="NOT A FIGURE: load $1 | "
  exec > >(trap '' INT TERM; exec awk -v p="${prefix}" '{ print p $0; fflush() }') 2>&1
  _LOAD_MARK_PIDS+=($!)
}

# load_at_end prints the 1-minute load average at the end; call it last.
load_at_end() {
  _load_say "1-minute load average at end: $(load_1min)"
  if ((${#_LOAD_MARK_PIDS[@]})); then
    # Let the markers write out their last lines before the script exits.
    exec >&- 2>&-
    wait "${_LOAD_MARK_PIDS[@]}" 2>/dev/null || true
  fi
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  set -uo pipefail
  (($#)) || { echo "usage: bash scripts/lib/load.sh COMMAND [ARGS...]" >&2; exit 2; }
  load_guard "${BENCH_LOAD_NAME:-$(basename "$1")}"
  "$@"
  rc=$?
  load_at_end
  exit "${rc}"
fi
