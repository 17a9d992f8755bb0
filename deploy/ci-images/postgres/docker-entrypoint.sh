#!/bin/sh
# Entrypoint of the PostgreSQL stand-in. On an empty $PGDATA: initdb with
# POSTGRES_USER as superuser and POSTGRES_PASSWORD (scram-sha-256 over TCP,
# trust on the local socket, as upstream), POSTGRES_DB created, then
# /docker-entrypoint-initdb.d/*.sql and *.sh run against a server that listens
# on the socket only. Then the server, listening on every address.
set -eu
sock=/var/run/postgresql
if [ "${1:-}" = postgres ]; then
  shift
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pw=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pw" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pw"
    printf "host all all all scram-sha-256\n" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$sock" start
    if [ "$db" != postgres ]; then
      psql -v ON_ERROR_STOP=1 -h "$sock" -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -h "$sock" -U "$user" -d "$db" -f "$f" ;;
        *.sh)
          echo "running $f"
          # shellcheck disable=SC1090 # the init scripts are the user's
          . "$f"
          ;;
        *) ;;
      esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
  fi
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$sock" "$@"
fi
exec "$@"
