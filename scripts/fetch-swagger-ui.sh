#!/usr/bin/env bash
# Refreshes the Swagger UI assets that the gateway embeds and serves at /docs
# (gateway/internal/apidocs/swaggerui/). They are committed, so that the
# gateway builds and its explorer works without a network; this script is
# only for moving to another version: change the version and the integrity
# (from `npm view swagger-ui-dist@VERSION dist.integrity`), run it, review the
# diff and commit it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="5.35.0"
INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
OUT="$ROOT/gateway/internal/apidocs/swaggerui"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tgz="$tmp/swagger-ui-dist-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ "$got" != "$INTEGRITY" ]]; then
  echo "swagger-ui-dist $VERSION: integrity $got, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
  install -m 0644 "$tmp/package/$f" "$OUT/$f"
done
echo "$VERSION" > "$OUT/VERSION"
echo "swagger-ui-dist $VERSION copied into $OUT"
