#!/usr/bin/env bash
# Generates clients of the OpenAPI document the gateway serves with three
# independent generators, lints it with two independent linters, and fails
# on any warning or type error, as an API consumer would meet them:
#   1. openapi-python-client (PyPI), then mypy --strict on the package;
#   2. oapi-codegen (Go module proxy; pinned in tools/go.mod), then go build
#      and go vet;
#   3. openapi-typescript (npm), then tsc --strict on the types and on
#      tools/clients/usage.ts, which reads every field of an answer as
#      present;
#   4. Redocly CLI's linter (npm), its recommended rules all errors;
#   5. openapi-generator's validate --recommend (PyPI; needs java).
# It installs what it needs, at the versions pinned in tools/clients/ and
# tools/go.mod, into .clients/ (ignored; reinstalled when a pin changes),
# and writes the clients under .clients/out/.
#
# Usage: scripts/check-clients.sh [DOCUMENT]   (default gen/openapi/shop.openapi.json)
# Env:   CLIENTS_DIR [.clients]   where the tools and the clients go
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOC="$(realpath "${1:-$ROOT/gen/openapi/shop.openapi.json}")"
DIR="${CLIENTS_DIR:-$ROOT/.clients}"
PINS="$ROOT/tools/clients"
GO="${GO:-go}"
OUT="$DIR/out"

log() { printf '[check-clients] %s\n' "$*"; }
die() { printf '[check-clients] FAIL: %s\n' "$*" >&2; exit 1; }

# fresh STAMP FILE...: true when STAMP is newer than every FILE.
fresh() {
  local stamp="$1" f
  shift
  [[ -f "$stamp" ]] || return 1
  for f in "$@"; do [[ "$stamp" -nt "$f" ]] || return 1; done
}

# run NAME COMMAND...: runs COMMAND; fails with its output when it exits
# non-zero or prints a warning.
run() {
  local name="$1" out
  shift
  if ! out="$("$@" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "$name failed"
  fi
  if grep -qiE 'warning|error' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "$name printed warnings"
  fi
}

install_tools() {
  mkdir -p "$DIR"
  if ! fresh "$DIR/venv/.stamp" "$PINS/requirements.txt"; then
    log "installing openapi-python-client, mypy and openapi-generator (tools/clients/requirements.txt)"
    rm -rf "$DIR/venv"
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r "$PINS/requirements.txt"
    touch "$DIR/venv/.stamp"
  fi
  if ! fresh "$DIR/npm/.stamp" "$PINS/package.json" "$PINS/package-lock.json"; then
    log "installing Redocly CLI, openapi-typescript and tsc (tools/clients/package-lock.json)"
    rm -rf "$DIR/npm"
    mkdir -p "$DIR/npm"
    cp "$PINS/package.json" "$PINS/package-lock.json" "$DIR/npm/"
    (cd "$DIR/npm" && npm ci --silent --no-audit --no-fund)
    touch "$DIR/npm/.stamp"
  fi
  if ! fresh "$DIR/bin/.stamp" "$ROOT/tools/go.mod" "$ROOT/tools/go.sum"; then
    log "building oapi-codegen (tools/go.mod)"
    (cd "$ROOT/tools" && GOBIN="$DIR/bin" "$GO" install github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen)
    touch "$DIR/bin/.stamp"
  fi
}

python_client() {
  local out="$OUT/python"
  rm -rf "$out"
  mkdir -p "$out"
  run "openapi-python-client" "$DIR/venv/bin/openapi-python-client" generate --path "$DOC" --meta none \
    --output-path "$out/shop_client" --config "$PINS/openapi-python-client.yaml"
  # The client's own imports (httpx, attrs, dateutil) are in the venv.
  (cd "$out" && run "mypy --strict on the Python client" "$DIR/venv/bin/mypy" --strict --no-incremental shop_client)
  log "python: openapi-python-client $(grep -oP '^openapi-python-client==\K.*' "$PINS/requirements.txt"), mypy --strict: clean"
}

go_client() {
  local out="$OUT/go" runtime
  rm -rf "$out"
  mkdir -p "$out"
  run "oapi-codegen" "$DIR/bin/oapi-codegen" -generate types,client -package shopclient -o "$out/client.gen.go" "$DOC"
  runtime="$(cd "$ROOT/tools" && "$GO" list -m -f '{{.Version}}' github.com/oapi-codegen/runtime)"
  printf 'module shopclient\n\ngo 1.24\n\nrequire github.com/oapi-codegen/runtime %s\n' "$runtime" >"$out/go.mod"
  (cd "$out" && "$GO" mod tidy >/dev/null 2>&1 || die "go mod tidy of the Go client failed")
  (cd "$out" && run "go build and go vet of the Go client" bash -c "'$GO' build ./... && '$GO' vet ./...")
  log "go: oapi-codegen $(cd "$ROOT/tools" && "$GO" list -m -f '{{.Version}}' github.com/oapi-codegen/oapi-codegen/v2), go vet: clean"
}

typescript_client() {
  local out="$OUT/typescript" bin="$DIR/npm/node_modules/.bin"
  rm -rf "$out"
  mkdir -p "$out"
  NODE_NO_WARNINGS=1 run "openapi-typescript" "$bin/openapi-typescript" "$DOC" -o "$out/shop.d.ts"
  cp "$PINS/usage.ts" "$out/"
  run "tsc --strict on the TypeScript client" "$bin/tsc" --strict --noEmit --noUnusedLocals --target es2022 \
    --module es2022 --moduleResolution bundler "$out/shop.d.ts" "$out/usage.ts"
  log "typescript: openapi-typescript $(grep -oP '"openapi-typescript": "\K[^"]+' "$PINS/package.json"), tsc --strict: clean"
}

redocly_lint() {
  local out
  # Node's own deprecation notices are not the document's problems.
  if ! out="$(cd "$PINS" && NODE_NO_WARNINGS=1 "$DIR/npm/node_modules/.bin/redocly" lint --format stylish \
    --config "$PINS/redocly.yaml" "$DOC" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "redocly lint found problems"
  fi
  if grep -qE '^ +[0-9]+:[0-9]+ +(warning|error)' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "redocly lint printed warnings"
  fi
  log "openapi: redocly lint $(grep -oP '"@redocly/cli": "\K[^"]+' "$PINS/package.json") (recommended-strict): clean"
}

openapi_generator_validate() {
  local out
  out="$("$DIR/venv/bin/openapi-generator-cli" validate --recommend -i "$DOC" 2>&1)" || {
    printf '%s\n' "$out" >&2
    die "openapi-generator validate found problems"
  }
  if ! grep -q '^No validation issues detected' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "openapi-generator validate --recommend has recommendations"
  fi
  log "openapi: openapi-generator $(grep -oP '^openapi-generator-cli==\K.*' "$PINS/requirements.txt") validate --recommend: clean"
}

[[ -f "$DOC" ]] || die "$DOC not found"
command -v java >/dev/null || die "java not found (openapi-generator runs on it; make kafka-start needs it too)"
install_tools
log "checking $DOC"
python_client
go_client
typescript_client
redocly_lint
openapi_generator_validate
log "3 generators and 2 linters, no warning"
