#!/usr/bin/env bash
# Fetches the third-party .proto files that proto/ imports into an ignored
# folder, from package registries only:
#   google/api/{annotations,http,field_behavior}.proto  from PyPI googleapis-common-protos
#   protoc-gen-openapiv2/options/*.proto from the grpc-gateway v2 Go module
#   buf/validate/validate.proto          from Maven Central build.buf:protovalidate
#     (the one registry package that ships the .proto source; its rules are read
#     at run time by buf.build/go/protovalidate, pinned in go.mod)
# The versions are pinned here and by go.mod, so generation is reproducible.
# Env: MAVEN_REPO_LOCAL, Maven's local repository for the jar (default
# ~/.m2/repository, shared with any other Maven use; set it to a folder of
# the clone to keep the download there); THIRD_PARTY_DIR (default
# .third_party/protos).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${THIRD_PARTY_DIR:-$ROOT/.third_party/protos}"
GOOGLEAPIS_COMMON_PROTOS_VERSION="${GOOGLEAPIS_COMMON_PROTOS_VERSION:-1.76.0}"
GOOGLE_API_PROTOS="annotations http field_behavior"
PROTOVALIDATE_JAR_VERSION="${PROTOVALIDATE_JAR_VERSION:-1.3.0}"
STAMP="$OUT/.stamp-$GOOGLEAPIS_COMMON_PROTOS_VERSION-${GOOGLE_API_PROTOS// /-}-pv$PROTOVALIDATE_JAR_VERSION"

if [[ -f "$STAMP" ]]; then
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$tmp" "googleapis-common-protos==$GOOGLEAPIS_COMMON_PROTOS_VERSION"
wheel="$(ls "$tmp"/googleapis_common_protos-*.whl)"

rm -rf "$OUT"
mkdir -p "$OUT/google/api" "$OUT/protoc-gen-openapiv2/options"
python3 - "$wheel" "$OUT" $GOOGLE_API_PROTOS <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in (f"google/api/{p}.proto" for p in sys.argv[3:]):
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(name))
PY

gw_dir="$(cd "$ROOT" && go mod download -json github.com/grpc-ecosystem/grpc-gateway/v2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
install -m 0644 "$gw_dir"/protoc-gen-openapiv2/options/annotations.proto \
  "$gw_dir"/protoc-gen-openapiv2/options/openapiv2.proto \
  "$OUT/protoc-gen-openapiv2/options/"

m2="${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}"
mvn -q -B -Dstyle.color=never dependency:get -Dtransitive=false -Dmaven.repo.local="$m2" \
  -Dartifact="build.buf:protovalidate:$PROTOVALIDATE_JAR_VERSION" >/dev/null
jar="$m2/build/buf/protovalidate/$PROTOVALIDATE_JAR_VERSION/protovalidate-$PROTOVALIDATE_JAR_VERSION.jar"
mkdir -p "$OUT/buf/validate"
python3 - "$jar" "$OUT" <<'PY'
import sys, zipfile
jar, out = sys.argv[1], sys.argv[2]
name = "buf/validate/validate.proto"
with zipfile.ZipFile(jar) as z, open(f"{out}/{name}", "wb") as f:
    f.write(z.read(name))
PY

touch "$STAMP"
